/**
 * Compile-time checks that the generated types constrain calls: each `@ts-expect-error` line
 * must be a type error, so if the types ever degrade to `any` (a broken generation, a spec the
 * generator cannot read) `tsc` fails on the unused directive. Never called.
 */
import { type StratusClient } from "./index.js";

export async function typecheck(client: StratusClient): Promise<void> {
  // @ts-expect-error: no such route in the spec
  await client.GET("/v1/no-such-route");
  // @ts-expect-error: a project needs a name
  await client.POST("/v1/projects", { body: { description: "nameless" } });
  // @ts-expect-error: not one of the listed sort orders
  await client.GET("/v1/projects", { params: { query: { sort: "size" } } });
  // @ts-expect-error: the path parameter is required
  await client.GET("/v1/projects/{project_id}", {});
  const { data, error } = await client.GET("/v1/me");
  if (data) {
    // @ts-expect-error: a credential has no such field
    void data.data.password;
    const mode: "live" | "test" = data.data.mode;
    void mode;
  } else {
    // @ts-expect-error: not a code of the catalogue
    void (error.code === "no_such_code");
  }
}
