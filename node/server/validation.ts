/**
 * Body validation for routes that take documents (a policy, a dataset
 * descriptor): the body's schema is checked by the same checker as the
 * document parsers (node/schemas/check.ts) — nothing coerced, nothing
 * removed — and a body that fails it is refused before its handler runs,
 * with the document's own error and code (UMBRA_INVALID_POLICY,
 * UMBRA_INVALID_DATASET, …) naming each field and what is allowed; a problem
 * outside the documents is UMBRA_BAD_REQUEST.
 *
 * Use as a route's `validatorCompiler` (bodies only): the document routes
 * and the job events, so no route coerces a type or drops a field unseen.
 */
import { Ajv } from "ajv";
import type { FastifySchemaCompiler } from "fastify";
import type { TSchema } from "typebox";
import { InvalidDatasetError } from "../catalog.js";
import { BadRequestError } from "../errors.js";
import { InvalidJobRequestError, InvalidPolicyError } from "../policy.js";
import { DOCUMENT_KEYWORD, schemaIssues, type FieldIssue } from "../schemas/check.js";
import { InvalidContractError } from "../venue/contract.js";
import { InvalidProductError, productIssues } from "../venue/product.js";

const DOCUMENT_ERRORS: Readonly<Record<string, (issues: readonly FieldIssue[]) => Error>> = {
  policy: (issues) => new InvalidPolicyError(issues),
  dataset: (issues) => new InvalidDatasetError(issues),
  "job-request": (issues) => new InvalidJobRequestError(issues),
  product: (issues) => new InvalidProductError(issues),
  contract: (issues) => new InvalidContractError(issues),
};

/** Documents whose parser finds more than their schema (a product: an entry twice): all of it is listed at once. */
const DOCUMENT_ISSUES: Readonly<Record<string, (value: unknown) => FieldIssue[]>> = { product: (value) => productIssues(value) };

/** The name a document's own problems call it by (as its parser does). */
const ROOT_NAMES: Readonly<Record<string, string>> = { policy: "policy", dataset: "descriptor", "job-request": "request" };

/** The error for a body that fails its schema: the first document in it found wrong, else a bad request naming the fields. */
function refusal(schema: TSchema, body: unknown, issues: readonly FieldIssue[]): Error {
  const own = (schema as Record<string, unknown>)[DOCUMENT_KEYWORD];
  const make = typeof own === "string" ? DOCUMENT_ERRORS[own] : undefined;
  if (typeof own === "string" && make) return make(schemaIssues(schema, body, ROOT_NAMES[own] ?? own));
  const properties = ((schema as { properties?: Record<string, TSchema> }).properties ?? {}) as Record<string, TSchema>;
  if (typeof body === "object" && body !== null && !Array.isArray(body)) {
    for (const [key, sub] of Object.entries(properties)) {
      const kind = (sub as Record<string, unknown>)[DOCUMENT_KEYWORD];
      const value = (body as Record<string, unknown>)[key];
      if (typeof kind !== "string" || value === undefined) continue;
      const own = DOCUMENT_ISSUES[kind]?.(value) ?? schemaIssues(sub, value, key);
      const make = DOCUMENT_ERRORS[kind];
      if (own.length > 0 && make) return make(own);
    }
  }
  return new BadRequestError(`invalid request body: ${issues.map((i) => `${i.field}: ${i.problem}`).join("; ")}`);
}

export const documentBodyValidator: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  if (httpPart !== "body") throw new Error("documentBodyValidator checks request bodies only");
  return (body: unknown) => {
    const issues = schemaIssues(schema, body, "body");
    return issues.length === 0 ? { value: body } : { error: refusal(schema, body, issues) };
  };
};

const strictAjv = new Ajv({ allErrors: false, coerceTypes: true, useDefaults: false, removeAdditional: false, strict: false });

/**
 * Validation of a route's query string and path parameters that refuses what
 * it does not know: Fastify's default drops an unknown query parameter
 * unseen; here it is a 400 UMBRA_BAD_REQUEST naming it (numbers are still
 * read from their text). Use as the `validatorCompiler` of a route without a
 * body (the console's routes).
 */
export const strictQueryValidator: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  if (httpPart === "body") throw new Error("strictQueryValidator checks query strings and path parameters only");
  const validate = strictAjv.compile(schema);
  return (value: unknown) => {
    if (validate(value)) return { value };
    const e = validate.errors?.[0];
    const where = httpPart === "params" ? "path" : "query";
    // An unknown parameter is not named (it is whatever the request made up); a known one is, with its rule.
    if (e?.keyword === "additionalProperties") return { error: new BadRequestError(`a ${where} parameter this route does not take was given`) };
    const name = e?.instancePath.replace(/^\//, "") ?? "";
    return { error: new BadRequestError(`invalid ${where} parameter${name ? ` "${name}"` : ""}: ${e?.message ?? "not allowed"}`) };
  };
};
