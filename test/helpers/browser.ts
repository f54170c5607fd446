import { existsSync } from "node:fs";
import { chromium } from "playwright-core";
import type { Browser, Page } from "playwright-core";

/** Debian's chromium package (CI installs it, see .ci/run); STREAMFN_CHROMIUM overrides. */
export const kChromiumPath = process.env.STREAMFN_CHROMIUM ?? "/usr/bin/chromium";

/** The reason to skip browser tests, or false when a browser is there. */
export const kSkipWithoutChromium: string | false = existsSync(kChromiumPath)
  ? false
  : `no Chromium at ${kChromiumPath}: install it (apt-get install -y chromium) or set STREAMFN_CHROMIUM to run the browser tests`;

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: kChromiumPath, args: ["--no-sandbox"] });
}

/** A page of ~1280×800 that fails the test on any script error the page throws. */
export async function openPage(browser: Browser, url: string): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const errors: string[] = [];
  page.on("pageerror", (err) => errors.push(err.message));
  await page.goto(url);
  return { page, errors };
}
