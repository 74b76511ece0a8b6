// write-store.js writes three tenants into an atlassian-connect-express
// store through ACE's own store adapter, the way an ACE app's lifecycle
// routes leave them:
//
//   - ACE's `installed` route saves the lifecycle body as the tenant's
//     `clientInfo` (settings.saveInstallation), and links a Forge
//     installationId to the clientKey (InstallationClientKeys).
//   - ACE itself has no `enabled`, `disabled` or `uninstalled` handling;
//     an ACE app records them by saving the lifecycle body the same way,
//     so the stored clientInfo carries eventType "disabled" or
//     "uninstalled". That is what these fixtures hold.
//   - App data is other keys of the same tenant (settings.set).
//
// Usage: node write-store.js sqlite FILE | postgres URL | redis URL DUMPFILE
"use strict";

const stores = require("atlassian-connect-express/lib/store");

const logger = { info() {}, warn: console.warn, error: console.error };

function payload(n, product, eventType, extra) {
  const site = `fixture-${n}.atlassian.net`;
  return Object.assign(
    {
      key: "tenon-checklist", // the key of tenon's example app, which the e2e test serves
      clientKey: `ace-fixture-${n}-0000-4000-8000-00000000000${n}`,
      publicKey: "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQCfixture",
      sharedSecret: `fixture-shared-secret-${n}-do-not-use-in-production-0123456789`,
      serverVersion: "100300",
      pluginsVersion: "1001.0.0-SNAPSHOT",
      baseUrl: product === "confluence" ? `https://${site}/wiki` : `https://${site}`,
      displayUrl: product === "confluence" ? `https://${site}/wiki` : `https://${site}`,
      productType: product,
      description: "Atlassian JIRA at https://" + site,
      eventType,
      oauthClientId: `oauth-fixture-${n}`,
      cloudId: `cloud-fixture-${n}`
    },
    extra || {}
  );
}

async function main() {
  const [kind, target] = process.argv.slice(2);
  let opts;
  switch (kind) {
    case "sqlite":
      opts = { adapter: "sequelize", dialect: "sqlite", storage: target, logging: false };
      break;
    case "postgres":
      opts = { adapter: "sequelize", url: target, logging: false };
      break;
    case "redis":
      opts = { adapter: "redis", url: target };
      break;
    default:
      throw new Error("usage: node write-store.js sqlite FILE | postgres URL | redis URL");
  }
  const store = stores(logger, opts);
  let redisClient;
  if (kind === "redis") {
    // ACE 11's Redis adapter promisifies callback methods of a redis v4
    // client it never connects, so on its own it fails every command
    // ("The client is closed"). Its key layout is what matters to an
    // import: keep the adapter's own code and give it a connected client.
    const { createClient } = require("redis");
    redisClient = createClient({ url: target });
    await redisClient.connect();
    store.client = {
      get: k => redisClient.get(k),
      set: (k, v) => redisClient.set(k, v),
      del: k => redisClient.del(k),
      keys: p => redisClient.keys(p)
    };
  }

  // 1: installed and enabled, with app data and a Forge installation.
  const one = payload(1, "jira", "installed", {
    installationId: "ari:cloud:ecosystem::installation/0a1b2c3d-0000-4000-8000-000000000001",
    entitlementId: "ent-fixture-1",
    entitlementNumber: "E-FIX-1"
  });
  await store.saveInstallation(one, one.clientKey);
  await store.set("boardConfig", { columns: ["To Do", "Done"], wip: 3 }, one.clientKey);
  await store.set("counter", 42, one.clientKey);
  await store.set("greeting", "hello from ACE", one.clientKey);
  await store.forForgeInstallation(one.installationId).set("forgeFlag", { on: true });

  // 2: installed, then disabled by a site administrator.
  const two = payload(2, "confluence", "installed");
  await store.saveInstallation(two, two.clientKey);
  await store.saveInstallation(payload(2, "confluence", "disabled"), two.clientKey);
  await store.set("spaceList", ["ENG", "OPS"], two.clientKey);

  // 3: installed, then uninstalled.
  const three = payload(3, "jira", "installed");
  await store.saveInstallation(three, three.clientKey);
  await store.saveInstallation(payload(3, "jira", "uninstalled"), three.clientKey);

  if (store.sequelize) {
    await store.sequelize.close();
  }
  if (redisClient) {
    // The dump: one JSON object per key, in key order, for tests to load
    // into a Redis database of their own.
    const keys = (await redisClient.keys("*")).sort();
    const lines = [];
    for (const k of keys) {
      lines.push(JSON.stringify({ key: k, value: await redisClient.get(k) }));
    }
    require("fs").writeFileSync(process.argv[4], lines.join("\n") + "\n");
    await redisClient.quit();
  }
}

main().then(
  () => process.exit(0),
  err => {
    console.error(err);
    process.exit(1);
  }
);
