// The page side runs in Chromium (playwright serializes installPageMetrics into the page), hence the DOM types.
/// <reference lib="dom" />

/** What the page records, installed before any of its scripts run. */
export interface PageMetrics {
  recording: boolean;
  /** which entry type measured frames: long-animation-frame, longtask, or none (rAF gaps only) */
  frameSource: string;
  /** durations of long frames (long-animation-frame entries, or long tasks) while recording */
  longFrames: number[];
  /** intervals between animation frames while recording */
  frameGaps: number[];
  /** the console's `alarmcast:event-to-paint` measures while recording */
  eventToPaint: number[];
  /** arrival times of WebSocket messages while recording (the load the page actually got) */
  messages: number[];
}

/** Runs in the page (serialized by playwright), so it may only use the page's globals. */
export function installPageMetrics(): void {
  const m: PageMetrics = {
    recording: false,
    frameSource: 'none',
    longFrames: [],
    frameGaps: [],
    eventToPaint: [],
    messages: [],
  };
  (window as unknown as { stormMetrics: PageMetrics }).stormMetrics = m;
  const types = PerformanceObserver.supportedEntryTypes;
  m.frameSource = types.includes('long-animation-frame')
    ? 'long-animation-frame'
    : types.includes('longtask')
      ? 'longtask'
      : 'none';
  if (m.frameSource !== 'none') {
    new PerformanceObserver((list) => {
      if (m.recording) for (const e of list.getEntries()) m.longFrames.push(e.duration);
    }).observe({ type: m.frameSource });
  }
  new PerformanceObserver((list) => {
    if (!m.recording) return;
    for (const e of list.getEntries())
      if (e.name === 'alarmcast:event-to-paint') m.eventToPaint.push(e.duration);
  }).observe({ type: 'measure' });
  const NativeWebSocket = window.WebSocket;
  window.WebSocket = class extends NativeWebSocket {
    constructor(...args: ConstructorParameters<typeof WebSocket>) {
      super(...args);
      this.addEventListener('message', () => {
        if (m.recording) m.messages.push(performance.now());
      });
    }
  };
  let last: number | undefined;
  const tick = (t: number) => {
    if (m.recording && last !== undefined) m.frameGaps.push(t - last);
    last = t;
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}

/** The most messages that arrived within any one second. */
export const peakPerSecond = (times: number[]) => {
  let peak = 0;
  for (let i = 0, j = 0; i < times.length; i++) {
    while (times[i]! - times[j]! >= 1000) j++;
    peak = Math.max(peak, i - j + 1);
  }
  return peak;
};

export const percentile = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? 0 : s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
