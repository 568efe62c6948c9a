import { test, expect } from "@playwright/test";
import { spawn, ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { admin, binary, repoRoot, shopWithUser, signIn } from "./helpers";

test.describe("an empty install", () => {
  // Its own Herald on a fresh database: the suite's shared one has shops from other tests.
  let server: ChildProcess;
  let base = "";
  const operator = { email: "first@example.com", password: "first-password-1" };

  test.beforeAll(async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "herald-first-run-"));
    server = spawn(binary, ["serve"], {
      cwd: repoRoot,
      env: {
        ...process.env,
        HERALD_DATABASE_URL: `sqlite://${dir}/herald.db`,
        HERALD_DATA_DIR: dir,
        HERALD_LISTEN: "127.0.0.1:0",
        HERALD_ADMIN_EMAIL: operator.email,
        HERALD_ADMIN_PASSWORD: operator.password,
        HERALD_LOG: "warn",
      },
    });
    base = await new Promise<string>((resolve, reject) => {
      let out = "";
      server.stdout!.on("data", (chunk) => {
        out += chunk;
        const m = out.match(/Herald is running at (\S+)/);
        if (m) resolve(m[1]);
      });
      server.on("exit", (code) => reject(new Error(`herald exited with ${code}: ${out}`)));
    });
  });
  test.afterAll(() => {
    server.kill();
  });

  test("the operator creates the first shop from the first page", async ({ page }) => {
    await signIn(page, operator.email, operator.password, base);
    await expect(page.getByText(/Ask an operator/)).toHaveCount(0);
    await page.getByLabel("Shop name").fill("First shop");
    await expect(page.getByLabel("Enable webhooks")).toBeChecked();
    await page.getByRole("button", { name: "Create a shop" }).click();
    await page.getByRole("link", { name: "First shop" }).click();

    await expect(page.getByRole("heading", { name: "First shop", level: 1 })).toBeVisible();
    await expect(page.getByRole("alert")).toHaveCount(0); // webhooks enabled in the same step
    const steps = page.getByRole("region", { name: "Next steps" });
    await expect(steps.getByRole("link", { name: "Add an endpoint" })).toBeVisible();
    await expect(steps.getByRole("link", { name: "create an API key" })).toHaveAttribute("href", /\/settings#api-keys$/);
    await expect(steps.locator("code")).toContainText(`curl -X POST ${base}/api/v1/events`);
  });
});

test("a user changes their password: the old one stops working, the new one signs in", async ({ page }) => {
  const user = shopWithUser("owner");
  await signIn(page, user.email, user.password);
  await page.getByRole("link", { name: "Account" }).click();
  await page.getByLabel("Current password").fill("not-my-password");
  await page.getByLabel("New password").fill("changed-password-1");
  await page.getByRole("button", { name: "Change password" }).click();
  await expect(page.getByRole("alert")).toHaveText("The current password is not right.");

  await page.getByLabel("Current password").fill(user.password);
  await page.getByLabel("New password").fill("changed-password-1");
  await page.getByRole("button", { name: "Change password" }).click();
  await expect(page.getByRole("status")).toContainText("Your password was changed");
  await page.getByRole("button", { name: "Sign out" }).click();

  await page.getByLabel("Email").fill(user.email);
  await page.getByLabel("Password").fill(user.password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByRole("alert")).toHaveText("Wrong email or password.");
  await signIn(page, user.email, "changed-password-1");
});

test("an operator resets a user's password", async ({ page }) => {
  const user = shopWithUser("viewer");
  await signIn(page, admin.email, admin.password);
  await page.getByRole("link", { name: "Users" }).click();
  await page.getByLabel(`New password for ${user.email}`).fill("reset-by-operator-1");
  await page.getByRole("button", { name: `Reset password for ${user.email}` }).click();
  await expect(page.getByRole("status")).toContainText("Password reset");
  await page.getByRole("button", { name: "Sign out" }).click();
  await signIn(page, user.email, "reset-by-operator-1");
});
