import type { Alarm } from './alarm-store.js';

/**
 * What `"notify"` in an event's data means on this page: `true` (the user's rules say deliver) → a desktop
 * notification (when the user allowed them) and a short tone; `false` (quiet hours, or an alarm's lifecycle
 * that their rules would otherwise have held back) → nothing but the row. Only raises and updates ring:
 * clears and acknowledgements are no reason to look up.
 */
let audio: AudioContext | null = null;

function tone(): void {
  try {
    audio ??= new AudioContext();
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.frequency.value = 880;
    gain.gain.value = 0.08;
    osc.connect(gain).connect(audio.destination);
    osc.start();
    osc.stop(audio.currentTime + 0.15);
  } catch {
    // No audio device (or not allowed before a user gesture): the notification is enough.
  }
}

export function notifyAlarm(event: string, alarm: Alarm, notify: unknown): void {
  if (notify !== true) return;
  if (!/AlarmCreated$|AlarmUpdated$/.test(event)) return;
  tone();
  if (typeof Notification === 'undefined' || Notification.permission !== 'granted') return;
  const title = `${alarm.perceived_severity}: ${alarm.specific_problem || alarm.probable_cause}`;
  new Notification(title, {
    body: `${alarm.event_type} · ${alarm.alarm_identifier}${alarm.device_id === null ? '' : ` · device ${alarm.device_id}`}`,
    tag: `alarm-${alarm.id}`,
  });
}

/** Asks for the permission once the user presses the button (browsers refuse it without a gesture). */
export async function enableNotifications(): Promise<string> {
  if (typeof Notification === 'undefined') return 'unsupported';
  return Notification.permission === 'default' ? Notification.requestPermission() : Notification.permission;
}
