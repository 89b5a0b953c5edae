import { chromium, type Browser } from 'playwright-core';

/**
 * Debian's Chromium (the browser download of playwright does not work here), headless, with everything that
 * would reach beyond 127.0.0.1 turned off.
 */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
