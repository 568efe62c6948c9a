// Every page of the panel, as each role sees it: axe-core finds no serious or critical
// violation (light and dark), no page scrolls sideways at 1280 px or at phone width, and the
// README's screenshots are taken here. Then the endpoint form: every setting kept on save,
// event types picked from the catalog, endpoints named by their description in the lists.
import { test, expect, Page } from "@playwright/test";
import AxeBuilder from "@axe-core/playwright";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as os from "node:os";
import * as path from "node:path";
import { AddressInfo } from "node:net";
import { baseURL } from "../playwright.config";
import { admin, apiClient, herald, open, shopWithUser, signIn, unique } from "./helpers";

/** A receiver on 127.0.0.1 that answers 200 and counts what it gets. */
async function receiver() {
  const state = { count: 0 };
  const server = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      state.count += 1;
      res.writeHead(200, { "content-type": "application/json" });
      res.end('{"ok":true}');
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return { state, url: `http://127.0.0.1:${port}/hook`, close: () => server.close() };
}

/** A self-signed client certificate and its key, PEM, made by openssl. */
function clientCertificate(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "herald-cert-"));
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-keyout", `${dir}/key.pem`, "-out", `${dir}/cert.pem`, "-days", "2", "-subj", "/CN=herald-e2e",
  ], { stdio: "ignore" });
  return fs.readFileSync(`${dir}/cert.pem`, "utf8") + fs.readFileSync(`${dir}/key.pem`, "utf8");
}

/** The serious and critical axe-core violations of the page as it is, one line each. */
async function seriousViolations(page: Page): Promise<string[]> {
  const result = await new AxeBuilder({ page })
    .withTags(["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"])
    .analyze();
  return result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" ")).slice(0, 5).join(", ")}`);
}

/** How far the page, or a table inside its box, scrolls sideways, and what makes it. */
async function sidewaysOverflow(page: Page): Promise<string> {
  return page.evaluate(() => {
    for (const wrap of Array.from(document.querySelectorAll(".table-wrap"))) {
      const over = wrap.scrollWidth - wrap.clientWidth;
      if (over > 1) return `the table "${wrap.getAttribute("aria-label")}" is ${over} px wider than its box`;
    }
    const over = document.documentElement.scrollWidth - window.innerWidth;
    if (over <= 1) return "";
    let widest = "";
    let right = window.innerWidth;
    for (const el of Array.from(document.querySelectorAll("body *"))) {
      const r = el.getBoundingClientRect();
      if (r.right > right + 1) {
        right = r.right;
        widest = `${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""}.${(el.className || "").toString().split(" ").join(".")}`;
      }
    }
    return `${over} px too wide (${widest})`;
  });
}

/** One shop with an endpoint, a delivered event and its attempt: every page has something. */
async function shopWithTraffic() {
  const rx = await receiver();
  const shop = shopWithUser("owner");
  const viewerEmail = `${unique("viewer")}@example.com`.toLowerCase();
  herald("user", "create", "--email", viewerEmail, "--password", "viewer-password-1", "--role", "viewer", "--shop", shop.shopId);
  const api = apiClient(shop.shopId, baseURL);
  const endpoint = (await api("/endpoints", { url: rx.url, description: "Order sync", event_types: ["order.created"] })).body;
  const published = await api("/events", { type: "order.created", data: { order_id: 42 } });
  expect(published.status).toBe(202);
  await expect.poll(() => rx.state.count, { timeout: 15_000 }).toBe(1);
  let delivery = "";
  await expect.poll(async () => {
    const list = (await api(`/deliveries?endpoint_id=${endpoint.id}`)).body;
    delivery = list.items[0]?.id ?? "";
    return list.items[0]?.status;
  }, { timeout: 15_000 }).toBe("succeeded");
  return { shop, rx, api, endpoint, delivery, viewer: { email: viewerEmail, password: "viewer-password-1" } };
}

/** The pages of a shop, by a short name (also the screenshot's). */
function shopPages(shopId: string, endpointId: string, deliveryId: string): [string, string][] {
  const s = `/shops/${shopId}`;
  return [
    ["dashboard", s], ["endpoints", `${s}/endpoints`], ["endpoint", `${s}/endpoints/${endpointId}`],
    ["channels", `${s}/channels`], ["catalog", `${s}/catalog`], ["queue", `${s}/queue`],
    ["delivery", `${s}/queue/${deliveryId}`], ["logs", `${s}/logs`], ["activity", `${s}/activity`],
    ["alerts", `${s}/alerts`], ["settings", `${s}/settings`],
  ];
}

async function checkPage(page: Page, name: string, url: string, problems: string[], screenshot?: string) {
  await open(page, url);
  await expect(page.getByRole("heading", { level: 1 })).toBeVisible();
  for (const v of await seriousViolations(page)) problems.push(`${name}: ${v}`);
  const over = await sidewaysOverflow(page);
  if (over) problems.push(`${name} at ${page.viewportSize()?.width} px: ${over}`);
  if (screenshot) await page.screenshot({ path: `../docs/screenshots/${screenshot}.png`, fullPage: true });
}

test.describe("every page, for every role", () => {
  test.setTimeout(240_000);

  test("an owner's pages: accessible in light and dark, no sideways scroll at 1280 px or on a phone", async ({ page }) => {
    const t = await shopWithTraffic();
    await signIn(page, t.shop.email, t.shop.password);
    await open(page, `/shops/${t.shop.shopId}/logs`);
    const attempt = await page.locator('td[data-label="Time"] a').first().getAttribute("href");
    const pages = [
      ...shopPages(t.shop.shopId, t.endpoint.id, t.delivery),
      ["attempt", attempt!] as [string, string],
      ["members", `/shops/${t.shop.shopId}/members`] as [string, string],
      ["account", "/account"] as [string, string],
    ];
    const problems: string[] = [];
    await page.setViewportSize({ width: 1280, height: 800 });
    for (const [name, url] of pages) await checkPage(page, name, url, problems, name);
    await page.emulateMedia({ colorScheme: "dark" });
    for (const [name, url] of pages) await checkPage(page, `${name} (dark)`, url, problems);
    await page.emulateMedia({ colorScheme: "light" });
    await page.setViewportSize({ width: 390, height: 844 });
    for (const [name, url] of pages) await checkPage(page, `${name} (phone)`, url, problems);
    expect(problems).toEqual([]);
    t.rx.close();
  });

  test("a viewer's pages are accessible and fit", async ({ page }) => {
    const t = await shopWithTraffic();
    await signIn(page, t.viewer.email, t.viewer.password);
    const problems: string[] = [];
    for (const [name, url] of [...shopPages(t.shop.shopId, t.endpoint.id, t.delivery), ["account", "/account"]]) {
      await checkPage(page, name, url, problems);
    }
    expect(problems).toEqual([]);
    t.rx.close();
  });

  test("an operator's pages are accessible and fit", async ({ page }) => {
    await signIn(page, admin.email, admin.password);
    const problems: string[] = [];
    const pages: [string, string][] = [
      ["shops", "/"], ["admin-shops", "/admin/shops"], ["admin-users", "/admin/users"], ["admin-nodes", "/admin/nodes"],
    ];
    for (const [name, url] of pages) await checkPage(page, name, url, problems, name);
    await page.setViewportSize({ width: 390, height: 844 });
    for (const [name, url] of pages) await checkPage(page, `${name} (phone)`, url, problems);
    expect(problems).toEqual([]);
  });

  test("the sign-in page is accessible", async ({ page }) => {
    await page.goto("/login");
    const problems = (await seriousViolations(page)).map((v) => `login: ${v}`);
    expect(problems).toEqual([]);
    await page.screenshot({ path: "../docs/screenshots/login.png", fullPage: true });
  });
});

test("an endpoint with every setting custom is saved, reopened and saved again unchanged", async ({ page }) => {
  const shop = shopWithUser("owner");
  const api = apiClient(shop.shopId, baseURL);
  await signIn(page, shop.email, shop.password);
  await open(page, `/shops/${shop.shopId}/endpoints`);
  await page.getByLabel("URL").fill("https://example.com/custom");
  await page.getByLabel("Description").fill("Custom everything");
  await page.getByLabel("Retry policy").selectOption({ label: "Explicit schedule" });
  await page.getByLabel("Delays (seconds, in order)").fill("1, 1, 30");
  await page.getByLabel("Disable on status codes").fill("400, 404, 410");
  await page.getByLabel("Unsubscribe phrase").fill("stop sending");
  await page.getByLabel("When a response contains it").selectOption("delete");
  await page.getByLabel("Disable after failing for (days)").fill("");
  await page.getByLabel("Client certificate and key (PEM)").fill(clientCertificate());
  await page.getByLabel("Rate limit (per second)").fill("7");
  await page.getByLabel("Timeout (ms)").fill("2500");
  await page.getByLabel("Priority").selectOption("high");
  await page.getByRole("button", { name: "Create endpoint" }).click();
  await expect(page.getByText("Endpoint created.")).toBeVisible();
  await page.getByRole("link", { name: "Open the endpoint" }).click();
  const id = page.url().split("/").pop()!;
  const first = (await api(`/endpoints/${id}`)).body;
  expect(first).toMatchObject({
    description: "Custom everything",
    retry: { policy: "schedule", delays_s: [1, 1, 30] },
    disable_on_status: [400, 404, 410],
    unsubscribe_phrase: "stop sending",
    unsubscribe_action: "delete",
    disable_after_days: null,
    client_certificate_set: true,
    rate_limit_per_second: 7,
    timeout_ms: 2500,
    priority: "high",
    event_types: [],
  });

  // Reopened, the form shows each setting as it is; saved untouched, nothing changes.
  await open(page, `/shops/${shop.shopId}/endpoints/${id}`);
  await expect(page.getByLabel("Retry policy")).toHaveValue("schedule");
  await expect(page.getByLabel("Delays (seconds, in order)")).toHaveValue("1, 1, 30");
  await expect(page.getByLabel("Disable on status codes")).toHaveValue("400, 404, 410");
  await expect(page.getByLabel("When a response contains it")).toHaveValue("delete");
  await expect(page.getByTestId("cert-state")).toContainText("A client certificate is set");
  await page.getByRole("button", { name: "Save endpoint" }).click();
  await expect(page.getByText("Endpoint saved.")).toBeVisible();
  const second = (await api(`/endpoints/${id}`)).body;
  expect({ ...second, updated_at: null }).toEqual({ ...first, updated_at: null });

  // A custom exponential policy reads back as its parameters, and saves unchanged too.
  await api(`/endpoints/${id}`, {
    retry: { policy: "exponential", initial_s: 3, max_interval_s: 90, max_retries: 4, slow_lane: true },
  }, "PATCH");
  const third = (await api(`/endpoints/${id}`)).body;
  await open(page, `/shops/${shop.shopId}/endpoints/${id}`);
  await expect(page.getByLabel("First interval (seconds)")).toHaveValue("3");
  await expect(page.getByLabel("Longest interval (seconds)")).toHaveValue("90");
  await expect(page.getByRole("checkbox", { name: /slow lane/ })).toBeChecked();
  await page.getByRole("button", { name: "Save endpoint" }).click();
  await expect(page.getByText("Endpoint saved.")).toBeVisible();
  expect({ ...(await api(`/endpoints/${id}`)).body, updated_at: null }).toEqual({ ...third, updated_at: null });

  // A preset fills the policy and its parameters.
  await page.getByLabel("Fill from a preset").selectOption({ label: "Every 5 minutes, 5 retries" });
  await expect(page.getByLabel("Retry policy")).toHaveValue("fixed");
  await expect(page.getByLabel("Interval (seconds)", { exact: true })).toHaveValue("300");

  // A value the server refuses is named next to its field, and the form keeps what was typed.
  await page.getByLabel("Interval (seconds)", { exact: true }).fill("0");
  await page.getByLabel("Description").fill("Edited, not saved");
  await page.getByRole("button", { name: "Save endpoint" }).click();
  await expect(page.locator(".field-error")).toContainText("at least");
  await expect(page.getByLabel("Description")).toHaveValue("Edited, not saved");
  await expect(page.getByLabel("Interval (seconds)", { exact: true })).toHaveValue("0");
  expect((await api(`/endpoints/${id}`)).body.retry.policy).toBe("exponential");
});

test("a new endpoint starts from the shop's default retry policy", async ({ page }) => {
  const shop = shopWithUser("owner");
  await signIn(page, shop.email, shop.password);
  await open(page, `/shops/${shop.shopId}/settings`);
  await page.getByLabel("Retry policy").selectOption({ label: "Linear (growing by a step)" });
  await page.getByLabel("Step (seconds)").fill("90");
  await page.getByLabel("How many retries").fill("4");
  await page.getByRole("button", { name: "Save settings" }).click();
  await expect(async () => {
    await open(page, `/shops/${shop.shopId}/settings`);
    await expect(page.getByLabel("Step (seconds)")).toHaveValue("90", { timeout: 1000 });
  }).toPass({ timeout: 10_000 });
  await open(page, `/shops/${shop.shopId}/endpoints`);
  await expect(page.getByLabel("Retry policy")).toHaveValue("linear");
  await expect(page.getByLabel("Step (seconds)")).toHaveValue("90");
  await expect(page.getByLabel("How many retries")).toHaveValue("4");
});

test("event types are picked from the catalog", async ({ page }) => {
  const shop = shopWithUser("owner");
  const api = apiClient(shop.shopId, baseURL);
  await signIn(page, shop.email, shop.password);
  await open(page, `/shops/${shop.shopId}/endpoints`);
  await page.getByLabel("URL").fill("https://example.com/tickets");
  await page.getByRole("checkbox", { name: "All event types" }).uncheck();
  await page.getByLabel("Find a type").fill("ticket");
  await expect(page.getByRole("checkbox", { name: "order.created", exact: true })).toBeHidden();
  await page.getByRole("checkbox", { name: "ticket.updated", exact: true }).check();
  await page.getByLabel("Find a type").fill("");
  await page.getByRole("checkbox", { name: "order.created", exact: true }).check();
  await page.getByRole("button", { name: "Create endpoint" }).click();
  await expect(page.getByText("Endpoint created.")).toBeVisible();
  await page.getByRole("link", { name: "Open the endpoint" }).click();
  const id = page.url().split("/").pop()!;
  expect((await api(`/endpoints/${id}`)).body.event_types).toEqual(["order.created", "ticket.updated"]);
  await open(page, `/shops/${shop.shopId}/endpoints/${id}`);
  await expect(page.getByRole("checkbox", { name: "All event types" })).not.toBeChecked();
  await expect(page.getByRole("checkbox", { name: "ticket.updated", exact: true })).toBeChecked();
  await expect(page.getByRole("checkbox", { name: "ticket.created", exact: true })).not.toBeChecked();
});

test("the queue, the logs and the dashboard name endpoints by their description", async ({ page }) => {
  const t = await shopWithTraffic();
  await signIn(page, t.shop.email, t.shop.password);
  await open(page, `/shops/${t.shop.shopId}/queue`);
  const row = page.getByRole("row").filter({ hasText: "order.created" }).first();
  await expect(row.getByRole("link", { name: "Order sync" })).toBeVisible();
  await expect(row.locator("time")).toHaveAttribute("title", /UTC$/);
  await page.getByLabel("Endpoint", { exact: true }).selectOption({ label: "Order sync" });
  await page.getByRole("button", { name: "Filter" }).click();
  await expect(page).toHaveURL(new RegExp(`endpoint_id=${t.endpoint.id}`));
  await expect(page.getByRole("row").filter({ hasText: "Order sync" })).toHaveCount(1);
  await open(page, `/shops/${t.shop.shopId}/logs`);
  await expect(page.getByRole("row").filter({ hasText: "order.created" }).first()).toContainText("Order sync");

  // The dashboard ranks it by name, and its figures open the queue filtered to them.
  await open(page, `/shops/${t.shop.shopId}`);
  const slowest = page.locator("section").filter({ has: page.getByRole("heading", { name: "Slowest endpoints" }) });
  await expect(slowest.getByRole("link", { name: "Order sync" })).toHaveAttribute("href", new RegExp(`endpoint_id=${t.endpoint.id}`));
  await expect(page.getByRole("figure").filter({ hasText: "Attempts, last 24 hours: 100.0 % succeeded of 1" })).toBeVisible();
  // One bar of each chart holds the attempt; it links to the queue of its time.
  const bars = page.getByRole("link", { name: /: 1 succeeded, 0 failed/ });
  await expect(bars).toHaveCount(2);
  await expect(bars.first()).toHaveAttribute("href", /\/queue\?since=\d{4}-\d\d-\d\dT\d\d:\d\d&until=\d{4}-\d\d-\d\dT\d\d:\d\d$/);
  await page.getByRole("link", { name: /^Failed/ }).click();
  await expect(page).toHaveURL(/\/queue\?status=failed$/);
  t.rx.close();
});

test("sign-in lands on the shop the switcher last chose", async ({ page }) => {
  const shop = shopWithUser("owner");
  await signIn(page, admin.email, admin.password);
  await expect(page).toHaveURL(/\/$/);
  await page.getByLabel("Shop", { exact: true }).selectOption({ label: shop.name });
  await page.getByRole("button", { name: "Switch" }).click();
  await expect(page.getByRole("heading", { name: shop.name, level: 1 })).toBeVisible();
  await page.getByRole("button", { name: "Sign out" }).click();
  await signIn(page, admin.email, admin.password);
  await expect(page).toHaveURL(new RegExp(`/shops/${shop.shopId}$`));
});

test("revoking a key and removing a member ask first, naming what goes", async ({ page }) => {
  const shop = shopWithUser("owner");
  const viewer = `${unique("leaving")}@example.com`.toLowerCase();
  herald("user", "create", "--email", viewer, "--password", "viewer-password-1", "--role", "viewer", "--shop", shop.shopId);
  await signIn(page, shop.email, shop.password);
  await open(page, `/shops/${shop.shopId}/settings`);
  await page.getByLabel("Key name").fill("ci");
  await page.getByRole("button", { name: "Create API key" }).click();
  const row = page.getByRole("row").filter({ hasText: "ci" });
  await expect(row).toBeVisible();
  await row.getByText("Revoke", { exact: true }).click();
  await expect(row.getByText(/Revoke the API key “ci” \(hk_/)).toBeVisible();
  await row.getByRole("button", { name: "Revoke ci" }).click();
  await expect(row).toContainText("Revoked");

  await open(page, `/shops/${shop.shopId}/members`);
  const member = page.getByRole("row").filter({ hasText: viewer });
  await member.getByText("Remove", { exact: true }).click();
  await expect(member.getByText(`Remove ${viewer} from this shop?`)).toBeVisible();
  await member.getByRole("button", { name: `Remove ${viewer}` }).click();
  await expect(page.getByRole("row").filter({ hasText: viewer })).toHaveCount(0);
});
