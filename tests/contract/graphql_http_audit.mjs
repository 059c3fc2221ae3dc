#!/usr/bin/env node
// Run graphql-http's GraphQL-over-HTTP server audits against a URL and print the results as JSON.
//
//   node tests/contract/graphql_http_audit.mjs http://127.0.0.1:8000/graphql
//
// Prints a JSON array of {id, name, status, reason} to stdout, one entry per audit, in the audit suite's order.
// status is "ok", "warn" (a SHOULD/MAY recommendation not met), "error" (a MUST requirement not met, or the
// audit itself crashed) or "notice" (informational; graphql-http uses it for a few audits). reason is "" for ok.
// Exit code: 0 when every audit ran (whatever the results), 2 on bad usage.
// graphql-http comes from ./node_modules (package.json pins it; `make install` runs `npm ci`).
import { serverAudits } from "graphql-http";

const url = process.argv[2];
if (!url || process.argv.length !== 3) {
  console.error("usage: node graphql_http_audit.mjs <graphql endpoint URL>");
  process.exit(2);
}

async function discard(response) {
  // Free the connection: the audits hand back the Response, sometimes with an unread body.
  try {
    if (response && response.body && !response.bodyUsed) {
      await response.body.cancel();
    }
  } catch {
    // already consumed or closed
  }
}

const results = [];
for (const audit of serverAudits({ url, fetchFn: fetch })) {
  let entry;
  try {
    const result = await audit.fn();
    entry = {
      id: audit.id,
      name: audit.name,
      status: result.status,
      reason: result.status === "ok" ? "" : String(result.reason),
    };
    await discard(result.response);
  } catch (error) {
    entry = {
      id: audit.id,
      name: audit.name,
      status: "error",
      reason: `audit crashed: ${error instanceof Error ? error.message : String(error)}`,
    };
  }
  results.push(entry);
}

process.stdout.write(JSON.stringify(results, null, 2) + "\n");
