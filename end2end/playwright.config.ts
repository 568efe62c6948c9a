import { defineConfig } from "@playwright/test";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

// One fresh database per run. The config is loaded again in each worker; the directory is
// created once, by the first load, and handed on through the environment.
if (!process.env.HERALD_E2E_DIR) {
  process.env.HERALD_E2E_DIR = fs.mkdtempSync(path.join(os.tmpdir(), "herald-e2e-"));
}
const dir = process.env.HERALD_E2E_DIR;
const port = process.env.HERALD_E2E_PORT ?? "3456";
export const baseURL = `http://127.0.0.1:${port}`;

// SQLite in the run's directory, or the PostgreSQL database `make test` hands over for the
// suite's second pass (HERALD_E2E_DATABASE_URL: an empty database of a private cluster).
export const heraldEnv = {
  HERALD_DATABASE_URL: process.env.HERALD_E2E_DATABASE_URL ?? `sqlite://${dir}/herald.db`,
  HERALD_DATA_DIR: dir,
  HERALD_LISTEN: `127.0.0.1:${port}`,
  HERALD_ADMIN_EMAIL: "admin@example.com",
  HERALD_ADMIN_PASSWORD: "admin-password-1",
  HERALD_SIGNIN_BURST: "40",
  HERALD_ALLOW_PRIVATE_TARGETS: "1",
  HERALD_LOG: "warn",
};

export default defineConfig({
  testDir: "./tests",
  timeout: 30_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  reporter: [["list"]],
  outputDir: "test-results",
  use: {
    baseURL,
    trace: "retain-on-failure",
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
      ],
    },
  },
  webServer: {
    command: "./target/debug/herald serve",
    cwd: "..",
    url: `${baseURL}/healthz`,
    env: { ...(process.env as Record<string, string>), ...heraldEnv },
    reuseExistingServer: false,
    timeout: 60_000,
    stdout: "pipe",
    stderr: "pipe",
  },
});
