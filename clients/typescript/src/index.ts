/**
 * A thin typed client for the Stratus API.
 *
 * Every route, parameter, body and response type comes from `schema.d.ts`, which
 * openapi-typescript generates from the gateway's `/openapi.json` (`npm run generate`); requests
 * go through openapi-fetch. This module adds the credential (`Authorization: Bearer …`), the
 * problem-details error type and a helper that walks cursor-paginated lists.
 */
import createFetchClient, { type Client, type ClientOptions as FetchClientOptions } from "openapi-fetch";

import type { components, paths } from "./schema.js";

export type { components, operations, paths } from "./schema.js";

/** The named schemas of the spec: `Schemas["Project"]`, `Schemas["Problem"]`, … */
export type Schemas = components["schemas"];
/** An RFC 9457 problem-details body (`application/problem+json`) with its stable `code`. */
export type Problem = Schemas["Problem"];
/** The `meta` of a list response: `next_cursor` and `has_more` (API.md, "Lists"). */
export type ListMeta = Schemas["ListMeta"];
export type StratusClient = Client<paths>;

export interface ClientOptions extends Omit<FetchClientOptions, "baseUrl"> {
  /** The gateway's base URL, e.g. `http://127.0.0.1:8080` (routes carry their `/v1`). */
  baseUrl: string;
  /** An API key (`sk_live_…`, `sk_test_…`) or a short-lived token from `POST /v1/tokens`. */
  apiKey: string;
}

/** A client for every route of the spec, authenticated with `apiKey`. */
export function createClient({ baseUrl, apiKey, headers, ...options }: ClientOptions): StratusClient {
  return createFetchClient<paths>({
    ...options,
    baseUrl: baseUrl.replace(/\/+$/, ""),
    headers: { ...headersRecord(headers), Authorization: `Bearer ${apiKey}` },
  });
}

function headersRecord(headers: FetchClientOptions["headers"]): Record<string, string> {
  const out: Record<string, string> = {};
  if (headers === undefined) return out;
  if (headers instanceof Headers || Array.isArray(headers)) {
    new Headers(headers).forEach((value, name) => {
      out[name] = value;
    });
    return out;
  }
  for (const [name, value] of Object.entries(headers)) {
    if (value !== null && value !== undefined) out[name] = Array.isArray(value) ? value.join(", ") : String(value);
  }
  return out;
}

/** A non-2xx answer: its status, its problem body (when it was one) and the raw response. */
export class StratusError extends Error {
  readonly status: number;
  readonly problem: Problem | undefined;
  readonly response: Response;

  constructor(response: Response, body: unknown) {
    const problem = isProblem(body) ? body : undefined;
    super(
      problem
        ? `${response.status} ${problem.code}: ${problem.detail}`
        : response.ok
          ? `${response.status}: the answer has no body`
          : `${response.status} ${response.statusText || "error"} (not a problem+json body)`,
    );
    this.name = "StratusError";
    this.status = response.status;
    this.problem = problem;
    this.response = response;
  }

  /** The problem's stable `code` (`project_not_found`, …), if the body was a problem. */
  get code(): Problem["code"] | undefined {
    return this.problem?.code;
  }
}

/** Whether `body` has the shape of a problem-details body. */
export function isProblem(body: unknown): body is Problem {
  if (typeof body !== "object" || body === null) return false;
  const b = body as Record<string, unknown>;
  return (
    typeof b.code === "string" &&
    typeof b.status === "number" &&
    typeof b.type === "string" &&
    typeof b.title === "string" &&
    typeof b.detail === "string"
  );
}

/** What one openapi-fetch call returns, as `unwrap` and `paginate` read it. */
export interface Answer<D> {
  data?: D;
  error?: unknown;
  response: Response;
}

/** The body of a 2xx answer (or of a call's promise), or a `StratusError` thrown for anything else. */
export async function unwrap<D>(call: Answer<D> | Promise<Answer<D>>): Promise<D> {
  const { data, error, response } = await call;
  if (!response.ok) throw new StratusError(response, error);
  if (data === undefined) throw new StratusError(response, undefined);
  return data;
}

/** One page of a list route: the envelope's `data` array and its list `meta`. */
export interface Page<T> {
  data: T[];
  meta: ListMeta;
}

/**
 * Every item of a cursor-paginated list, page after page: `fetchPage` is called with no cursor
 * first, then with each page's `meta.next_cursor` for as long as `meta.has_more` is true. Its
 * answer's type gives the items' type:
 *
 *     for await (const project of paginate((cursor) =>
 *       client.GET("/v1/projects", { params: { query: { limit: 100, cursor } } }))) { … }
 *
 * A non-2xx answer throws a `StratusError`.
 */
export async function* paginate<T>(
  fetchPage: (cursor: string | undefined) => Promise<Answer<Page<T>>>,
): AsyncGenerator<T, void, undefined> {
  let cursor: string | undefined;
  for (;;) {
    const page = await unwrap(fetchPage(cursor));
    yield* page.data;
    if (!page.meta.has_more) return;
    if (!page.meta.next_cursor) {
      throw new Error("the list says has_more but gives no meta.next_cursor");
    }
    cursor = page.meta.next_cursor;
  }
}
