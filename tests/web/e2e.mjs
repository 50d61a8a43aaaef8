// The web pages end to end in headless Chromium (driven by playwright-core), against a running
// sasgate in front of Azurite. Started by tests/web_e2e.rs, which passes:
//
//   SASGATE_URL         the server, e.g. http://127.0.0.1:PORT (its server.public_url)
//   ADMIN_KEY           an admin's API key
//   RESEARCHER_KEY      a researcher's API key
//   AZURITE_CA          the emulator's CA certificate (PEM), to download through a link
//   EXPECTED_BODY_B64   the bytes of models/published/model.bin, base64
//   SCREENSHOT_DIR      where to write the README screenshots
//   CHROMIUM            the browser (default /usr/bin/chromium)
//
// It prints one JSON object on stdout: {"ok": true, "checks": {...}} or {"ok": false, "error"}.
// Every step that fails throws; the exit status is 0 only if every check passed.

import { readFileSync, mkdirSync, statSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import path from "node:path";
import { chromium } from "playwright-core";

const env = (name, fallback) => {
  const v = process.env[name] ?? fallback;
  if (v === undefined) throw new Error(`${name} is not set`);
  return v;
};
const BASE = env("SASGATE_URL").replace(/\/$/, "");
const ADMIN_KEY = env("ADMIN_KEY");
const RESEARCHER_KEY = env("RESEARCHER_KEY");
const CA = readFileSync(env("AZURITE_CA"));
const EXPECTED = Buffer.from(env("EXPECTED_BODY_B64"), "base64");
const SHOTS = env("SCREENSHOT_DIR");
const CHROMIUM = env("CHROMIUM", "/usr/bin/chromium");
const CSP =
  "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const checks = {};
const check = (name, ok, detail) => {
  checks[name] = ok;
  if (!ok) throw new Error(`check failed: ${name}${detail === undefined ? "" : `: ${detail}`}`);
};

/** One GET without following redirects; https with the emulator's CA. */
function get(url) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const mod = u.protocol === "https:" ? https : http;
    const req = mod.get(u, u.protocol === "https:" ? { ca: CA } : {}, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () =>
        resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) })
      );
    });
    req.on("error", reject);
    req.setTimeout(20000, () => req.destroy(new Error(`timeout: GET ${u.origin}${u.pathname}`)));
  });
}

/** Every console message and CSP violation of a page, for the final check. */
const cspViolations = [];
const consoleErrors = [];
function watch(page, who) {
  page.on("console", (m) => {
    const text = m.text();
    if (/Content[- ]Security[- ]Policy/i.test(text)) cspViolations.push(`${who}: ${text}`);
    // A 403 or 410 answer is logged as "Failed to load resource"; the forgeries cause some.
    if (m.type() === "error" && !text.startsWith("Failed to load resource")) {
      consoleErrors.push(`${who}: ${text}`);
    }
  });
  page.on("pageerror", (e) => consoleErrors.push(`${who}: ${e.message}`));
}

async function newContext(browser) {
  const context = await browser.newContext({
    ignoreHTTPSErrors: true,
    viewport: { width: 1200, height: 900 },
    deviceScaleFactor: 1,
  });
  // The page reports every CSP violation to this list (init scripts run outside the page's CSP).
  await context.addInitScript(() => {
    window.__csp = [];
    document.addEventListener("securitypolicyviolation", (e) =>
      window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`)
    );
  });
  return context;
}

async function pageViolations(page) {
  return page.evaluate(() => window.__csp || []);
}

/** Clicks `target` and waits until the page it leads to (maybe at the same URL) has loaded. */
async function clickAndLoad(page, target) {
  await Promise.all([
    page.waitForEvent("framenavigated", { predicate: (f) => f === page.mainFrame() }),
    target.click(),
  ]);
  await page.waitForLoadState("domcontentloaded");
}

/** Signs in with the keyboard only: Tab to the skip link, Enter, Tab to the key field, type, Enter. */
async function signInWithKeyboard(page, key) {
  const response = await page.goto(`${BASE}/ui/`);
  check("unsigned_redirects_to_signin", page.url() === `${BASE}/ui/signin`, page.url());
  const h = response.headers();
  check("csp_header", h["content-security-policy"] === CSP, h["content-security-policy"]);
  check("nosniff_header", h["x-content-type-options"] === "nosniff");
  check("no_store_header", h["cache-control"] === "no-store", h["cache-control"]);
  await page.keyboard.press("Tab");
  const first = await page.evaluate(() => document.activeElement?.textContent?.trim());
  check("tab_reaches_skip_link_first", first === "Skip to main content", first);
  // The skip link jumps over the header to the form.
  await page.keyboard.press("Enter");
  await page.keyboard.press("Tab");
  const focused = await page.evaluate(() => document.activeElement?.id);
  check("tab_reaches_key_field", focused === "api_key", focused);
  await page.keyboard.type(key);
  await Promise.all([page.waitForURL(`${BASE}/ui/`), page.keyboard.press("Enter")]);
}

async function signIn(page, key) {
  await page.goto(`${BASE}/ui/signin`);
  await page.getByLabel("API key").fill(key);
  await Promise.all([
    page.waitForURL(`${BASE}/ui/`),
    page.getByRole("button", { name: "Sign in" }).click(),
  ]);
}

/** Requests a broker link on the request page; returns {id, link}. */
async function requestLink(page, { blob, container, reason, ttl }) {
  await page.goto(`${BASE}/ui/request`);
  await page.getByLabel("Container").fill(container);
  await page.getByLabel("Blob", { exact: true }).fill(blob);
  if (ttl) await page.getByLabel("Lifetime").fill(ttl);
  if (reason) await page.getByLabel("Reason").fill(reason);
  await page.getByLabel(/A broker link/).check();
  await clickAndLoad(page, page.getByRole("button", { name: "Request", exact: true }));
  await page.locator("#result").waitFor();
  const refused = await page.locator("#result.refusal").count();
  if (refused) {
    return { refusal: await page.locator("#result").innerText() };
  }
  return {
    id: (await page.locator("#issuance-id").innerText()).trim(),
    link: (await page.locator("#secret").inputValue()).trim(),
  };
}

async function main() {
  mkdirSync(SHOTS, { recursive: true });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  const shots = [];
  try {
    // --- The researcher -------------------------------------------------------------------
    const rctx = await newContext(browser);
    await rctx.grantPermissions(["clipboard-read", "clipboard-write"], { origin: BASE });
    const r = await rctx.newPage();
    watch(r, "researcher");
    await signInWithKeyboard(r, RESEARCHER_KEY);
    const cookies = await rctx.cookies(BASE);
    const session = cookies.find((c) => c.name === "__Host-sasgate_session");
    check("session_cookie_set", !!session, JSON.stringify(cookies.map((c) => c.name)));
    check(
      "session_cookie_attributes",
      session.httpOnly && session.secure && session.sameSite === "Strict" && session.path === "/",
      JSON.stringify(session)
    );
    check("signin_cookie_cleared", !cookies.some((c) => c.name === "__Host-sasgate_signin"));

    // A request the policy refuses shows the code and the per-rule reasons.
    const refused = await requestLink(r, {
      container: "models",
      blob: "published/model.bin",
      ttl: "7d",
    });
    check("refusal_shown", !!refused.refusal);
    check("refusal_code", refused.refusal.includes("ttl_exceeds_policy"), refused.refusal);
    check(
      "refusal_reasons",
      (await r.locator("#refusal-reasons li").count()) > 0 &&
        refused.refusal.includes("researchers-read-models"),
      refused.refusal
    );

    // The link that will be downloaded, then revoked by the admin.
    const first = await requestLink(r, {
      container: "models",
      blob: "published/model.bin",
      reason: "web e2e: download",
    });
    check("link_created", !!first.link && first.link.startsWith(`${BASE}/l/`), JSON.stringify(first));
    // The copy button (shown by the script) puts the link on the clipboard.
    const copy = r.getByRole("button", { name: "Copy to clipboard" });
    check("copy_button_visible", await copy.isVisible());
    await copy.click();
    await r.locator(".copy-status").filter({ hasText: "Copied." }).waitFor();
    const clip = await r.evaluate(() => navigator.clipboard.readText());
    check("copied_to_clipboard", clip === first.link);
    const requestShot = path.join(SHOTS, "web-request.png");
    await r.screenshot({ path: requestShot, fullPage: false });
    shots.push(requestShot);

    // Download through the link: a 302 to a short SAS on Azurite, and the seeded bytes.
    const redirect = await get(first.link);
    check("link_redirects", redirect.status === 302, redirect.status);
    const download = await get(redirect.headers.location);
    check("download_status", download.status === 200, download.status);
    check("download_bytes", download.body.equals(EXPECTED), download.body.toString());

    // Two more links: one for the forgery attempts (must stay active), one to revoke oneself.
    const kept = await requestLink(r, { container: "models", blob: "published/model.bin", reason: "web e2e: kept" });
    const mine = await requestLink(r, { container: "models", blob: "published/model.bin", reason: "web e2e: mine" });
    check("more_links_created", !!kept.id && !!mine.id);

    // --- The admin ----------------------------------------------------------------------------
    const actx = await newContext(browser);
    const a = await actx.newPage();
    watch(a, "admin");
    await signIn(a, ADMIN_KEY);
    await a.goto(`${BASE}/ui/issuances`);
    await a.getByLabel("Principal").fill("user:alice");
    await a.getByLabel("Status").selectOption("active");
    await Promise.all([a.waitForURL(/\/ui\/issuances\?/), a.getByRole("button", { name: "Filter" }).click()]);
    const row = a.locator(`#issuances tr[data-id="${first.id}"]`);
    check("issuance_listed", (await row.count()) === 1);
    check(
      "listing_holds_no_secret",
      !(await a.content()).includes(first.link.split("/l/")[1])
    );
    await Promise.all([a.waitForURL(`${BASE}/ui/issuances/${first.id}`), row.getByRole("link").click()]);
    const redemptions = await a.locator("#redemptions tbody tr").count();
    check("redemption_shown", redemptions === 1, redemptions);
    const issuanceShot = path.join(SHOTS, "web-issuance.png");
    await a.screenshot({ path: issuanceShot, fullPage: true });
    shots.push(issuanceShot);

    // Revoke: the confirmation says what it does, then the reason is posted.
    await clickAndLoad(a, a.getByRole("link", { name: "Revoke…" }));
    const effect = await a.locator("#effect").innerText();
    check("confirmation_explains", effect.includes("stops at once"), effect);
    await a.getByLabel(/^Reason/).fill("leaked in a chat (web e2e)");
    await clickAndLoad(a, a.getByRole("button", { name: "Revoke", exact: true }));
    check("revoked_page", (await a.locator("main").innerText()).includes("Revoked."));
    const gone = await get(first.link);
    check("revoked_link_gone", gone.status === 410, gone.status);
    await a.goto(`${BASE}/ui/issuances/${first.id}`);
    const reason = await a.locator("#revoke-reason").innerText();
    check("revocation_history", reason === "leaked in a chat (web e2e)", reason);

    // --- Forgeries: nothing changes --------------------------------------------------------------
    // 1. A page on another origin (same site: 127.0.0.1, another port) posts the revoke form;
    //    the browser sends the admin's cookie along, but the origin is not ours.
    const evil = http.createServer((req, res) => {
      res.setHeader("Content-Type", "text/html");
      res.end(
        `<!doctype html><title>evil</title><form method="post" action="${BASE}/ui/issuances/${kept.id}/revoke">` +
          `<input name="reason" value="forged"><input name="csrf" value="guessed"><button id="go">go</button></form>`
      );
    });
    await new Promise((ok) => evil.listen(0, "127.0.0.1", ok));
    const evilUrl = `http://127.0.0.1:${evil.address().port}/`;
    const apage = await actx.newPage();
    await apage.goto(evilUrl);
    const [forged] = await Promise.all([
      apage.waitForResponse((resp) => resp.url().endsWith(`/ui/issuances/${kept.id}/revoke`)),
      apage.click("#go"),
    ]);
    check("cross_origin_post_refused", forged.status() === 403, forged.status());
    evil.close();
    await apage.close();
    // 2. Our own origin and the admin's session cookie, but a wrong or missing token. (The
    //    pages' CSP forbids fetch() from a page, so this goes through the context's own
    //    request client, which sends the context's cookies.)
    const tokenStatuses = [];
    for (const form of [{ reason: "forged", csrf: "wrong" }, { reason: "forged" }]) {
      const resp = await actx.request.post(`${BASE}/ui/issuances/${kept.id}/revoke`, {
        form,
        headers: { Origin: BASE },
        maxRedirects: 0,
      });
      tokenStatuses.push(resp.status());
    }
    check("wrong_or_missing_token_refused", tokenStatuses.every((s) => s === 403), JSON.stringify(tokenStatuses));
    await a.goto(`${BASE}/ui/issuances/${kept.id}`);
    const keptStatus = await a.locator(".lead .status").innerText();
    check("forged_revoke_changed_nothing", keptStatus === "active", keptStatus);
    check("kept_link_still_works", (await get(kept.link)).status === 302);

    // --- The researcher revokes their own link from My links ------------------------------------
    await r.goto(`${BASE}/ui/links`);
    const myRow = r.locator(`#my-links tr[data-id="${mine.id}"]`);
    check("my_link_listed", (await myRow.count()) === 1);
    check("my_links_hold_no_secret", !(await r.content()).includes(mine.link.split("/l/")[1]));
    await clickAndLoad(r, myRow.getByRole("link", { name: /Revoke/ }));
    await clickAndLoad(r, r.getByRole("button", { name: "Revoke this link" }));
    check("own_link_revoked_page", (await r.locator("main").innerText()).includes("Revoked."));
    check("own_revoked_link_gone", (await get(mine.link)).status === 410);
    // A researcher cannot open the admin pages.
    const denied = await r.goto(`${BASE}/ui/issuances`);
    check("researcher_not_admin", denied.status() === 403, denied.status());

    // --- Sign out ends the session ---------------------------------------------------------------
    await a.goto(`${BASE}/ui/`);
    await Promise.all([a.waitForURL(`${BASE}/ui/signin`), a.getByRole("button", { name: "Sign out" }).click()]);
    await a.goto(`${BASE}/ui/issuances`);
    check("signed_out", a.url() === `${BASE}/ui/signin`, a.url());

    // --- No CSP violation anywhere ------------------------------------------------------------------
    for (const p of [r, a]) cspViolations.push(...(await pageViolations(p)));
    check("no_csp_violations", cspViolations.length === 0, JSON.stringify(cspViolations));
    check("no_console_errors", consoleErrors.length === 0, JSON.stringify(consoleErrors));

    const sizes = Object.fromEntries(shots.map((s) => [path.basename(s), statSync(s).size]));
    return { ok: true, checks, screenshots: sizes, issuance: first.id, kept: kept.id, mine: mine.id };
  } finally {
    await browser.close();
  }
}

main().then(
  (summary) => {
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  },
  (e) => {
    process.stdout.write(`${JSON.stringify({ ok: false, error: String(e?.stack || e), checks })}\n`);
    process.exitCode = 1;
  }
);
