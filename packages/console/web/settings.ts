import type { PreferenceRules, TenantPreferences, UserPreferencesResponse } from '@alarmcast/contracts';

/**
 * The settings page: the user's own notification rules (`GET/PUT /v1/me/preferences`), with what their
 * tenant locks greyed out and the quiet hours in force shown, and, for a tenant admin, the tenant's
 * defaults and locks (`GET/PUT /v1/tenants/{id}/preferences`) as a JSON document. Writes send the ETag they
 * read in `If-Match`; a 412 (changed elsewhere meanwhile) reloads the form and says so.
 */
type Api = (path: string, init?: RequestInit) => Promise<Response>;

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const list = (text: string): string[] =>
  text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');

/** `mon,tue 22:00-07:00` per line ⇄ quiet-hour windows. */
function windowsOf(text: string): { days: string[]; start: string; end: string }[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .map((line) => {
      const m = /^([a-z,\s]+)\s+(\d{2}:\d{2})\s*-\s*(\d{2}:\d{2})$/i.exec(line);
      if (!m) throw new Error(`quiet hours: write each window as "mon,tue 22:00-07:00" (not "${line}")`);
      return { days: list(m[1]!.toLowerCase()), start: m[2]!, end: m[3]! };
    });
}
const windowsText = (windows: { days: string[]; start: string; end: string }[]): string =>
  windows.map((w) => `${w.days.join(',')} ${w.start}-${w.end}`).join('\n');

const LOCKABLE: Record<string, string> = {
  minSeverity: 'pref-min-severity',
  'mute.eventTypes': 'pref-mute-event-types',
  'mute.probableCauses': 'pref-mute-causes',
  'mute.devices': 'pref-mute-devices',
  'categories.alarms': 'pref-alarms',
  quietHours: 'pref-quiet',
};

export class SettingsPage {
  private etag = '"0"';
  private tenantEtag = '"0"';
  private tenantId: number | null = null;

  constructor(private readonly api: Api) {
    $('prefs-form').addEventListener('submit', (e) => {
      e.preventDefault();
      void this.save();
    });
    $('tenant-form').addEventListener('submit', (e) => {
      e.preventDefault();
      void this.saveTenant();
    });
  }

  async load(): Promise<void> {
    const res = await this.api('/v1/me/preferences');
    if (!res.ok) return this.status('prefs-status', `Could not load your settings (${res.status}).`);
    this.etag = res.headers.get('etag') ?? '"0"';
    const body = (await res.json()) as UserPreferencesResponse;
    this.fill(body);
    this.tenantId = body.tenant_id;
    await this.loadTenant();
  }

  private fill(body: UserPreferencesResponse): void {
    const p: PreferenceRules = body.preferences;
    $<HTMLSelectElement>('pref-min-severity').value =
      p.minSeverity === undefined ? '' : p.minSeverity === null ? 'none' : p.minSeverity;
    $<HTMLInputElement>('pref-mute-event-types').value = (p.mute?.eventTypes ?? []).join(', ');
    $<HTMLInputElement>('pref-mute-causes').value = (p.mute?.probableCauses ?? []).join(', ');
    $<HTMLInputElement>('pref-mute-devices').value = (p.mute?.devices ?? []).join(', ');
    const alarms = p.categories?.alarms;
    $<HTMLSelectElement>('pref-alarms').value = alarms === undefined ? '' : alarms ? 'on' : 'off';
    $<HTMLInputElement>('pref-tz').value = p.quietHours?.timeZone ?? '';
    $<HTMLTextAreaElement>('pref-quiet').value = p.quietHours ? windowsText(p.quietHours.windows) : '';
    const locks = new Set<string>(body.tenant?.locks ?? []);
    for (const [setting, id] of Object.entries(LOCKABLE)) {
      const input = $<HTMLInputElement>(id);
      input.disabled = locks.has(setting);
      input.title = locks.has(setting) ? 'locked by your tenant' : '';
      if (setting === 'quietHours') $<HTMLInputElement>('pref-tz').disabled = locks.has(setting);
    }
    $('prefs-locks').textContent = locks.size === 0 ? '' : `Locked by your tenant: ${[...locks].join(', ')}.`;
    // The quiet hours in force, wherever they come from (yours, the tenant's default or its lock).
    const quiet = body.effective.quietHours as {
      value: { timeZone: string; windows: { days: string[]; start: string; end: string }[] } | null;
      source: string;
    };
    $('quiet-summary').textContent = quiet.value
      ? `Quiet hours in force (${quiet.value.timeZone}, ${quiet.source === 'user' ? 'yours' : `from your tenant`}): ${quiet.value.windows.map((w) => `${w.days.join(',')} ${w.start}-${w.end}`).join('; ')}`
      : 'No quiet hours in force.';
  }

  /** The form as a document: an empty field leaves the setting out (the tenant's default applies). */
  private read(): PreferenceRules {
    const doc: PreferenceRules = {};
    const enabled = (id: string) => !$<HTMLInputElement>(id).disabled;
    const min = $<HTMLSelectElement>('pref-min-severity').value;
    if (enabled('pref-min-severity') && min !== '')
      doc.minSeverity = min === 'none' ? null : (min as NonNullable<PreferenceRules['minSeverity']>);
    const mute: NonNullable<PreferenceRules['mute']> = {};
    const eventTypes = list($<HTMLInputElement>('pref-mute-event-types').value);
    if (enabled('pref-mute-event-types') && eventTypes.length > 0) mute.eventTypes = eventTypes;
    const causes = list($<HTMLInputElement>('pref-mute-causes').value);
    if (enabled('pref-mute-causes') && causes.length > 0) mute.probableCauses = causes;
    const devices = list($<HTMLInputElement>('pref-mute-devices').value);
    if (enabled('pref-mute-devices') && devices.length > 0) mute.devices = devices.map(Number);
    if (Object.keys(mute).length > 0) doc.mute = mute;
    const alarms = $<HTMLSelectElement>('pref-alarms').value;
    if (enabled('pref-alarms') && alarms !== '') doc.categories = { alarms: alarms === 'on' };
    const windows = windowsOf($<HTMLTextAreaElement>('pref-quiet').value);
    if (enabled('pref-quiet') && windows.length > 0)
      doc.quietHours = {
        timeZone:
          $<HTMLInputElement>('pref-tz').value.trim() || Intl.DateTimeFormat().resolvedOptions().timeZone,
        windows: windows as NonNullable<PreferenceRules['quietHours']>['windows'],
      };
    return doc;
  }

  private async save(): Promise<void> {
    let doc: PreferenceRules;
    try {
      doc = this.read();
    } catch (err) {
      return this.status('prefs-status', (err as Error).message);
    }
    const res = await this.api('/v1/me/preferences', {
      method: 'PUT',
      body: JSON.stringify(doc),
      headers: { 'if-match': this.etag },
    });
    if (res.ok) {
      this.etag = res.headers.get('etag') ?? this.etag;
      this.fill((await res.json()) as UserPreferencesResponse);
      return this.status('prefs-status', 'Saved: applies from the next alarm on.');
    }
    if (res.status === 412) {
      await this.load();
      return this.status(
        'prefs-status',
        'Your settings were changed elsewhere meanwhile: reloaded, try again.',
      );
    }
    this.status('prefs-status', await problem(res));
  }

  private async loadTenant(): Promise<void> {
    $('tenant-form').hidden = true;
    if (this.tenantId === null) return;
    const res = await this.api(`/v1/tenants/${this.tenantId}/preferences`);
    // Only the tenant's admins may: everyone else simply does not get the section.
    if (!res.ok) return;
    this.tenantEtag = res.headers.get('etag') ?? '"0"';
    const body = (await res.json()) as { preferences: TenantPreferences };
    $<HTMLTextAreaElement>('tenant-doc').value = JSON.stringify(body.preferences, null, 2);
    $('tenant-form').hidden = false;
  }

  private async saveTenant(): Promise<void> {
    let doc: unknown;
    try {
      doc = JSON.parse($<HTMLTextAreaElement>('tenant-doc').value);
    } catch {
      return this.status('tenant-status', 'The tenant preferences are not valid JSON.');
    }
    const res = await this.api(`/v1/tenants/${this.tenantId}/preferences`, {
      method: 'PUT',
      body: JSON.stringify(doc),
      headers: { 'if-match': this.tenantEtag },
    });
    if (res.ok) {
      this.tenantEtag = res.headers.get('etag') ?? this.tenantEtag;
      this.status('tenant-status', 'Saved: applies from the next alarm on.');
      return this.load();
    }
    if (res.status === 412) {
      await this.loadTenant();
      return this.status('tenant-status', 'Changed elsewhere meanwhile: reloaded, try again.');
    }
    this.status('tenant-status', await problem(res));
  }

  private status(id: string, text: string): void {
    $(id).textContent = text;
  }
}

/** An error answer as one line naming the fields (the API's `details`). */
async function problem(res: Response): Promise<string> {
  try {
    const { error } = (await res.json()) as {
      error: { message: string; details?: { field: string; message: string }[] };
    };
    const fields = (error.details ?? []).map((d) => `${d.field}: ${d.message}`).join('; ');
    return fields ? `${error.message} (${fields})` : error.message;
  } catch {
    return `Not saved (${res.status}).`;
  }
}
