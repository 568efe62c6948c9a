import { execFileSync } from "node:child_process";
import * as path from "node:path";
import { expect, Page } from "@playwright/test";
import { heraldEnv } from "../playwright.config";

export const binary = path.resolve(__dirname, "../../target/debug/herald");
export const repoRoot = path.resolve(__dirname, "../..");

/** Runs the herald command line against the test database; returns its last line. */
export function herald(...args: string[]): string {
  const out = execFileSync(binary, args, {
    cwd: path.resolve(__dirname, "../.."),
    env: { ...process.env, ...heraldEnv },
    encoding: "utf8",
  });
  const lines = out.trim().split("\n");
  return lines[lines.length - 1];
}

export const admin = { email: heraldEnv.HERALD_ADMIN_EMAIL, password: heraldEnv.HERALD_ADMIN_PASSWORD };

let counter = 0;
/** A name no other test uses. */
export function unique(prefix: string): string {
  counter += 1;
  return `${prefix}-${Date.now().toString(36)}-${counter}`;
}

export async function signIn(page: Page, email: string, password: string, base = "") {
  await page.goto(`${base}/login`);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByRole("button", { name: "Sign out" })).toBeVisible();
}

/** Creates a shop and a user with a role in it, through the command line. */
export function shopWithUser(role: "owner" | "viewer", enableWebhooks = true) {
  const name = unique("Shop");
  const args = ["shop", "create", "--name", name];
  if (enableWebhooks) args.push("--enable-webhooks");
  const shopId = herald(...args);
  const email = `${unique(role)}@example.com`.toLowerCase();
  const password = "password-" + unique("pw");
  herald("user", "create", "--email", email, "--password", password, "--role", role, "--shop", shopId);
  return { shopId, name, email, password };
}

/** Opens a page and waits until it is hydrated (what needs the WebAssembly then works). */
export async function open(page: Page, url: string) {
  await page.goto(url);
  await page.locator("html[data-hydrated]").waitFor({ state: "attached" });
}

/** A client of the REST API with a new key of the shop. */
export function apiClient(shopId: string, baseURL: string) {
  const key = herald("api-key", "create", "--shop", shopId, "--name", unique("key"));
  return async (path: string, body?: unknown, method = body === undefined ? "GET" : "POST") => {
    const res = await fetch(`${baseURL}/api/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };
}
