import { test, expect, Page } from "@playwright/test";
import * as http from "node:http";
import { AddressInfo } from "node:net";
import { open, shopWithUser, signIn } from "./helpers";

/** A local receiver whose answer can be switched between failing and succeeding. */
async function receiver(initialStatus: number) {
  const state = { status: initialStatus, count: 0 };
  const server = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      state.count += 1;
      res.writeHead(state.status);
      res.end("ok");
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return { state, url: `http://127.0.0.1:${port}/hook`, close: () => server.close() };
}

async function createEndpoint(page: Page, shopId: string, url: string, extra?: (p: Page) => Promise<void>) {
  await open(page, `/shops/${shopId}/endpoints`);
  await page.getByLabel("URL").fill(url);
  await page.getByLabel("Retry policy").selectOption({ label: "Fixed interval" });
  await page.getByLabel("Interval (seconds)", { exact: true }).fill("300");
  await page.getByLabel("How many retries").fill("5");
  if (extra) await extra(page);
  await page.getByRole("button", { name: "Create endpoint" }).click();
  await expect(page.getByText("Endpoint created.")).toBeVisible();
  await page.getByRole("link", { name: "Open the endpoint" }).click();
  await expect(page.getByRole("heading", { name: url })).toBeVisible();
}

test("an owner creates an endpoint with a template and sees the preview", async ({ page }) => {
  const shop = shopWithUser("owner");
  await signIn(page, shop.email, shop.password);
  await open(page, `/shops/${shop.shopId}/endpoints`);
  await expect(page.getByText("No endpoints yet")).toBeVisible();
  await page.getByLabel("URL").fill("https://example.com/orders");
  await page.getByRole("checkbox", { name: "All event types" }).uncheck();
  await page.getByRole("checkbox", { name: "order.created", exact: true }).check();
  await page.getByLabel("Payload template").fill('{"order": {order_id}, "type": "{event_type}"}');
  await expect(page.getByTestId("preview")).toContainText('"type": "order.created"');
  await page.getByLabel("Payload template").fill('{"order": {order_id');
  await expect(page.getByText("does not render to valid JSON")).toBeVisible();
  await page.getByLabel("Payload template").fill('{"order": {order_id}}');
  await page.getByRole("button", { name: "Create endpoint" }).click();
  await expect(page.getByText("Endpoint created.")).toBeVisible();
  await expect(page.locator("code.secret")).toContainText("whsec_");
});

test("a test event is found in the queue and the logs, and the secret rotates", async ({ page }) => {
  const rx = await receiver(200);
  const shop = shopWithUser("owner");
  await signIn(page, shop.email, shop.password);
  await createEndpoint(page, shop.shopId, rx.url);
  await page.getByRole("button", { name: "Reveal signing secret" }).click();
  const first = await page.locator(".copy-block pre").textContent();
  expect(first).toMatch(/^whsec_/);
  await page.getByRole("button", { name: "Rotate signing secret" }).click();
  await expect(page.getByText("New signing secret")).toBeVisible();
  await expect(page.locator(".copy-block pre")).not.toHaveText(first!);

  await page.getByRole("button", { name: "Send test event" }).click();
  await expect(page.getByText("Test event queued")).toBeVisible();
  await expect.poll(() => rx.state.count).toBeGreaterThan(0);
  // The receiver answers before Herald has recorded the outcome, and the queue page does not
  // refresh itself: load it again until the attempt is recorded.
  await expect(async () => {
    await page.goto(`/shops/${shop.shopId}/queue`);
    await expect(page.getByRole("row").filter({ hasText: "order.created" }).first()).toContainText(
      "succeeded",
      { timeout: 1000 },
    );
  }).toPass({ timeout: 15000 });
  await page.goto(`/shops/${shop.shopId}/logs`);
  const row = page.getByRole("row").filter({ hasText: "order.created" }).first();
  await expect(row).toContainText("200");
  await row.locator('td[data-label="Time"] a').click();
  await expect(page.getByRole("heading", { name: "Request" })).toBeVisible();
  await expect(page.getByText("webhook-signature")).toBeVisible();
  rx.close();
});

test("failed deliveries are retried from the queue: one row, then a selection", async ({ page }) => {
  const rx = await receiver(500);
  const shop = shopWithUser("owner");
  await signIn(page, shop.email, shop.password);
  await createEndpoint(page, shop.shopId, rx.url);
  // Three test events fail; with 5-minute retries they wait as "retrying".
  for (let i = 0; i < 3; i++) {
    await page.getByRole("button", { name: "Send test event" }).click();
    await expect(page.getByText("Test event queued")).toBeVisible();
  }
  await expect.poll(() => rx.state.count).toBe(3);
  rx.state.status = 200;
  await page.goto(`/shops/${shop.shopId}/queue?status=retrying`);
  const rows = page.getByRole("row").filter({ hasText: "retrying" });
  await expect(rows).toHaveCount(3);
  // One row.
  await rows.first().getByRole("button", { name: /^Retry / }).click();
  await expect(page.getByText("1 deliveries updated.")).toBeVisible();
  // A selection.
  await page.goto(`/shops/${shop.shopId}/queue?status=retrying`);
  await expect(page.getByRole("row").filter({ hasText: "retrying" })).toHaveCount(2);
  await page.getByRole("checkbox").first().check();
  await page.getByRole("button", { name: "Retry selected" }).click();
  await expect(page.getByText("1 deliveries updated.")).toBeVisible();
  await page.goto(`/shops/${shop.shopId}/queue?status=succeeded`);
  await expect(page.getByRole("row").filter({ hasText: "succeeded" })).toHaveCount(2);
  rx.close();
});

test("retry all failed asks to confirm the count first", async ({ page }) => {
  const rx = await receiver(500);
  const shop = shopWithUser("owner");
  await signIn(page, shop.email, shop.password);
  await open(page, `/shops/${shop.shopId}/endpoints`);
  await page.getByLabel("URL").fill(rx.url);
  await page.getByLabel("Retry policy").selectOption({ label: "Linear (growing by a step)" });
  await page.getByRole("button", { name: "Create endpoint" }).click();
  await page.getByRole("link", { name: "Open the endpoint" }).click();
  // An endpoint created through the API with no retries makes failures final at once.
  const id = page.url().split("/").pop()!;
  const key = (await import("./helpers")).herald("api-key", "create", "--shop", shop.shopId, "--name", "t");
  const api = (path: string, body: unknown, method = "POST") =>
    fetch(`${page.url().split("/shops")[0]}/api/v1${path}`, {
      method, headers: { authorization: `Bearer ${key}`, "content-type": "application/json" }, body: JSON.stringify(body),
    });
  await api(`/endpoints/${id}`, { retry: { policy: "schedule", delays_s: [] } }, "PATCH");
  for (let i = 0; i < 2; i++) await api("/events", { type: "order.created", data: { i } });
  await expect.poll(() => rx.state.count).toBe(2);
  rx.state.status = 200;
  await page.goto(`/shops/${shop.shopId}/queue`);
  await page.getByRole("button", { name: "Retry all failed (2)" }).click();
  await expect(page.getByRole("alertdialog")).toContainText("Retry 2 failed deliveries");
  await page.getByRole("button", { name: "Confirm retry" }).click();
  await expect(page.getByText("2 failed deliveries queued again.")).toBeVisible();
  await expect.poll(() => rx.state.count).toBe(4);
  rx.close();
});

test("the activity page shows new events live", async ({ page }) => {
  const rx = await receiver(200);
  const shop = shopWithUser("owner");
  await signIn(page, shop.email, shop.password);
  await createEndpoint(page, shop.shopId, rx.url);
  const endpointPage = page.url();
  const feed = await page.context().newPage();
  await feed.goto(`/shops/${shop.shopId}/activity`);
  await expect(feed.getByText("Live")).toBeVisible();
  await page.goto(endpointPage);
  await page.getByRole("button", { name: "Send test event" }).click();
  await expect(feed.getByRole("row").filter({ hasText: "event.published" })).toHaveCount(1, { timeout: 5000 });
  await expect(feed.getByRole("status")).not.toHaveText("0 messages received");
  await feed.screenshot({ path: "../docs/screenshots/activity.png", fullPage: true });
  rx.close();
});

test("a viewer sees the shop but every action is disabled and refused", async ({ page }) => {
  const shop = shopWithUser("viewer");
  await signIn(page, shop.email, shop.password);
  await page.goto(`/shops/${shop.shopId}/endpoints`);
  await expect(page.getByRole("heading", { name: "Endpoints" })).toBeVisible();
  await expect(page.getByRole("button", { name: "Create endpoint" })).toHaveCount(0);
  await page.goto(`/shops/${shop.shopId}/queue`);
  await expect(page.getByRole("button", { name: "Retry selected" })).toBeDisabled();
  await page.goto(`/shops/${shop.shopId}/settings`);
  await expect(page.getByRole("button", { name: "Save settings" })).toBeDisabled();
  await expect(page.getByRole("button", { name: "Create API key" })).toHaveCount(0);
});

test("the main pages render under the Content-Security-Policy", async ({ page }) => {
  // The Content-Security-Policy lets the page's own scripts run (hydration) and nothing else.
  const violations: string[] = [];
  page.on("console", (m) => {
    if (/Content Security Policy/i.test(m.text())) violations.push(m.text());
  });
  const shop = shopWithUser("owner");
  await signIn(page, shop.email, shop.password);
  for (const [path, heading] of [
    ["", shop.name], ["/catalog", "Event Catalog"], ["/channels", "Channels"],
    ["/alerts", "Alerts"], ["/settings", "Settings"],
  ]) {
    await page.goto(`/shops/${shop.shopId}${path}`);
    await expect(page.getByRole("heading", { name: heading, level: 1 })).toBeVisible();
  }
  await page.goto(`/shops/${shop.shopId}/catalog?q=ticket.updated`);
  await page.getByText("ticket.updated").first().click();
  await expect(page.getByRole("button", { name: "Copy ticket.updated sample" })).toBeVisible();
  expect(violations).toEqual([]);
});

test("an owner cannot open another shop's pages", async ({ page }) => {
  const mine = shopWithUser("owner");
  const other = shopWithUser("owner");
  await signIn(page, mine.email, mine.password);
  for (const path of ["", "/endpoints", "/queue", "/logs", "/settings"]) {
    const response = await page.goto(`/shops/${other.shopId}${path}`);
    expect(response?.status(), path).toBe(403);
  }
  await expect(page.getByRole("heading", { name: "Forbidden" })).toBeVisible();
});

test.describe("on a phone-sized screen", () => {
  test.use({ viewport: { width: 390, height: 844 } });

  test("the pages fit the width", async ({ page }) => {
    const shop = shopWithUser("owner");
    await signIn(page, shop.email, shop.password);
    for (const path of ["", "/endpoints", "/queue", "/settings"]) {
      await page.goto(`/shops/${shop.shopId}${path}`);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      expect(overflow, path).toBeLessThanOrEqual(1);
    }
  });
});
