import { test, expect } from "@playwright/test";
import { admin, herald, shopWithUser, signIn, unique } from "./helpers";

test("an operator signs in and out", async ({ page }) => {
  await signIn(page, admin.email, admin.password);
  await expect(page.getByText(admin.email)).toBeVisible();
  await page.getByRole("button", { name: "Sign out" }).click();
  await expect(page).toHaveURL(/\/login/);
  await page.goto("/admin/shops");
  await expect(page).toHaveURL(/\/login/);
});

test("a wrong password says so without saying whether the email exists", async ({ page }) => {
  await page.goto("/login");
  await page.getByLabel("Email").fill(admin.email);
  await page.getByLabel("Password").fill("not-the-password");
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByRole("alert")).toHaveText("Wrong email or password.");

  await page.getByLabel("Email").fill("nobody@example.com");
  await page.getByLabel("Password").fill("not-the-password");
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByRole("alert")).toHaveText("Wrong email or password.");
});

test("a viewer cannot reach operator pages or another shop", async ({ page }) => {
  const mine = shopWithUser("viewer");
  const other = shopWithUser("owner");
  await signIn(page, mine.email, mine.password);
  // A member of exactly one shop lands on its dashboard.
  await expect(page).toHaveURL(new RegExp(`/shops/${mine.shopId}$`));
  await expect(page.getByRole("heading", { name: mine.name, level: 1 })).toBeVisible();
  await expect(page.getByRole("link", { name: "Users" })).toHaveCount(0);

  for (const path of ["/admin/shops", "/admin/users", "/admin/nodes", `/shops/${other.shopId}`, `/shops/${mine.shopId}/members`]) {
    const response = await page.goto(path);
    expect(response?.status(), path).toBe(403);
    await expect(page.getByRole("heading", { name: "Forbidden" })).toBeVisible();
  }
  const own = await page.goto(`/shops/${mine.shopId}`);
  expect(own?.status()).toBe(200);
  await expect(page.getByRole("heading", { name: mine.name })).toBeVisible();
});

test.describe("without JavaScript", () => {
  test.use({ javaScriptEnabled: false });

  test("sign-in works and pages render on the server", async ({ page }) => {
    await signIn(page, admin.email, admin.password);
    await page.goto("/admin/shops");
    await expect(page.getByRole("heading", { name: "Shops", level: 1 })).toBeVisible();
  });
});

test("the operator creates a shop and enables its webhooks", async ({ page }) => {
  const name = unique("Acme");
  await signIn(page, admin.email, admin.password);
  await page.getByRole("link", { name: "Shops" }).click();
  await page.getByLabel("Shop name").fill(name);
  await page.getByRole("button", { name: "Create shop" }).click();
  const row = page.getByRole("row").filter({ hasText: name });
  await expect(row).toContainText("Disabled");
  await page.getByRole("button", { name: `Enable webhooks for ${name}` }).click();
  await expect(row).toContainText("Enabled");
  await expect(page.getByRole("button", { name: `Disable webhooks for ${name}` })).toBeVisible();
});

test("an owner adds a viewer to their shop", async ({ page }) => {
  const shop = shopWithUser("owner");
  const viewer = `${unique("new-viewer")}@example.com`.toLowerCase();
  await signIn(page, shop.email, shop.password);
  await page.goto(`/shops/${shop.shopId}/members`);
  await page.getByLabel("Email").fill(viewer);
  await page.getByLabel("Password (for a new user)").fill("viewer-password-1");
  await page.getByRole("button", { name: "Add member" }).click();
  await expect(page.getByRole("row").filter({ hasText: viewer })).toContainText("viewer");
  // The command line sees the same store.
  expect(herald("shop", "create", "--name", unique("cli"))).toMatch(/^shp_/);
});

test("an operator sees the nodes sharing the database", async ({ page }) => {
  await signIn(page, admin.email, admin.password);
  await page.getByRole("link", { name: "Nodes" }).click();
  await expect(page.getByRole("heading", { name: "Nodes" })).toBeVisible();
  const me = page.getByRole("row", { name: /this node/ });
  await expect(me).toContainText("alive");
  await expect(me.getByRole("cell").nth(3)).toHaveText(/\d+ deliveries/);
});
