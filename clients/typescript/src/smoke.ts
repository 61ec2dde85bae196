/**
 * A smoke test of the generated client against a running stack: every call below is typed by
 * `schema.d.ts`, so a spec change that breaks it fails `tsc`, and an answer that does not match
 * fails at run time.
 *
 *     STRATUS_API_URL=http://127.0.0.1:8080 STRATUS_API_KEY=sk_live_… node dist/smoke.js
 *
 * Exits 0 when every check passes, 1 on the first mismatch, 2 when the environment is missing.
 */
import { randomUUID } from "node:crypto";

import { type Schemas, StratusError, createClient, isProblem, paginate, unwrap } from "./index.js";

class Mismatch extends Error {}

function check(condition: unknown, what: string): asserts condition {
  if (!condition) throw new Mismatch(what);
}

function env(name: string): string {
  const value = process.env[name];
  if (!value) {
    console.error(`smoke: ${name} is not set`);
    process.exit(2);
  }
  return value;
}

const apiKey = env("STRATUS_API_KEY");
const client = createClient({ baseUrl: env("STRATUS_API_URL"), apiKey });
// Projects made here and not yet deleted: deleted on the way out whatever happened.
const leftovers = new Set<string>();

async function main(): Promise<void> {
  const run = randomUUID().slice(0, 8);

  // The calling credential.
  const me = (await unwrap(client.GET("/v1/me"))).data;
  check(me.object === "credential", `GET /v1/me: object is ${me.object}`);
  check(me.account.startsWith("acct_"), `GET /v1/me: account ${me.account}`);
  check(apiKey.startsWith(`sk_${me.mode}_`), `GET /v1/me: mode ${me.mode} for this key`);
  check(me.scopes.includes("write"), `GET /v1/me: scopes ${me.scopes.join(",")} lack write`);
  console.log(`me: ${me.key_id} of ${me.account} (${me.mode})`);

  // A project, created under an Idempotency-Key: the repeat is the first answer, replayed.
  const name = `ts-smoke-${run}`;
  const idempotencyKey = `ts-smoke-${randomUUID()}`;
  const create = () =>
    client.POST("/v1/projects", {
      params: { header: { "Idempotency-Key": idempotencyKey } },
      body: { name, description: "made by the TypeScript client's smoke test" },
    });
  const first = await create();
  check(first.response.status === 201, `POST /v1/projects: status ${first.response.status}`);
  const project: Schemas["Project"] = (await unwrap(first)).data;
  leftovers.add(project.id);
  check(project.id.startsWith("prj_") && project.name === name, `POST /v1/projects: ${JSON.stringify(project)}`);
  check(
    first.response.headers.get("location") === `/v1/projects/${project.id}`,
    `POST /v1/projects: Location ${first.response.headers.get("location")}`,
  );
  const again = await create();
  check(again.response.headers.get("idempotent-replayed") === "true", "POST /v1/projects again: not replayed");
  check(again.data?.data.id === project.id, `POST /v1/projects again: id ${again.data?.data.id}`);
  console.log(`created: ${project.id} (${project.name})`);

  // Two more, so that a page size of 2 takes the paginator over two pages; newest first, they
  // are the first three listed, and the walk stops once it has seen them.
  const others: Schemas["Project"][] = [];
  for (const suffix of ["b", "c"]) {
    const other = (await unwrap(client.POST("/v1/projects", { body: { name: `${name}-${suffix}` } }))).data;
    leftovers.add(other.id);
    others.push(other);
  }
  const mine = new Set([project.id, ...others.map((p) => p.id)]);
  const seen = new Set<string>();
  let pages = 0;
  for await (const item of paginate((cursor) => {
    pages += 1;
    return client.GET("/v1/projects", { params: { query: { limit: 2, sort: "-created", cursor } } });
  })) {
    check(!seen.has(item.id), `GET /v1/projects: ${item.id} listed twice`);
    seen.add(item.id);
    if ([...mine].every((id) => seen.has(id))) break;
  }
  for (const id of mine) check(seen.has(id), `GET /v1/projects: ${id} not listed (${seen.size} seen)`);
  check(pages === 2, `GET /v1/projects?limit=2: the three newest took ${pages} page(s)`);
  console.log(`listed: ${seen.size} projects over ${pages} pages`);

  // Read it back, with its ETag.
  const read = await client.GET("/v1/projects/{project_id}", { params: { path: { project_id: project.id } } });
  const got = (await unwrap(read)).data;
  check(got.id === project.id && got.name === name, `GET /v1/projects/${project.id}: ${JSON.stringify(got)}`);
  check(
    read.response.headers.get("etag") === `"${got.version}"`,
    `GET /v1/projects/${project.id}: ETag ${read.response.headers.get("etag")} for version ${got.version}`,
  );

  // Delete them; the answer is the final state.
  for (const id of mine) {
    const gone = (
      await unwrap(
        client.DELETE("/v1/projects/{project_id}", {
          params: { path: { project_id: id }, header: { "Idempotency-Key": `ts-smoke-del-${id}` } },
        }),
      )
    ).data;
    leftovers.delete(id);
    check(gone.id === id && gone.deleted === true, `DELETE /v1/projects/${id}: ${JSON.stringify(gone)}`);
  }
  console.log(`deleted: ${[...mine].join(", ")}`);

  // A missing project is a problem+json 404 with its stable code.
  const missing = await client.GET("/v1/projects/{project_id}", { params: { path: { project_id: project.id } } });
  check(missing.response.status === 404, `GET deleted project: status ${missing.response.status}`);
  check(
    missing.response.headers.get("content-type")?.startsWith("application/problem+json"),
    `GET deleted project: content-type ${missing.response.headers.get("content-type")}`,
  );
  // isProblem() narrows: the spec lists another body for this route's 400 (Litestar's default
  // `{status_code, detail, extra}`, application/json), so `error.code` needs narrowing first.
  check(missing.error !== undefined && isProblem(missing.error), `GET deleted project: ${JSON.stringify(missing.error)}`);
  const problem = missing.error;
  check(problem.code === "project_not_found", `GET deleted project: code ${problem.code}`);
  check(problem.status === 404 && problem.type === "/errors/project_not_found", `problem: ${JSON.stringify(problem)}`);
  check(
    problem.request_id === missing.response.headers.get("x-request-id"),
    `problem request_id ${problem.request_id} vs X-Request-Id ${missing.response.headers.get("x-request-id")}`,
  );

  // A 422 names the field, and unwrap() throws it as a StratusError.
  try {
    await unwrap(client.POST("/v1/projects", { body: { name: "Not A DNS Label!" } }));
    throw new Mismatch("POST /v1/projects with a bad name: accepted");
  } catch (error) {
    if (!(error instanceof StratusError)) throw error;
    check(error.status === 422 && error.code === "validation_failed", `bad name: ${error.message}`);
    check(
      error.problem?.errors?.some((e) => e.field === "name"),
      `bad name: errors ${JSON.stringify(error.problem?.errors)}`,
    );
  }
  console.log("problems: 404 project_not_found, 422 validation_failed");
  console.log("smoke: ok");
}

let code = 0;
try {
  await main();
} catch (error: unknown) {
  console.error(`smoke: FAILED: ${error instanceof Error ? error.message : String(error)}`);
  const expected = error instanceof Mismatch || error instanceof StratusError;
  if (!expected && error instanceof Error && error.stack) console.error(error.stack);
  code = 1;
} finally {
  for (const id of leftovers) {
    await client.DELETE("/v1/projects/{project_id}", { params: { path: { project_id: id } } }).catch(() => undefined);
  }
}
process.exit(code);
