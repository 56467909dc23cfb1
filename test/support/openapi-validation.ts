import { fullFormats } from 'ajv-formats/dist/formats';
import OpenAPIResponseValidator from 'openapi-response-validator';
import type { OpenAPIV3 } from 'openapi-types';

export interface CheckedResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

type Operation = OpenAPIV3.OperationObject;

/**
 * Checks real responses against a served OpenAPI document the way a generated client relies on it:
 * the status is listed, the media type is the one listed, the body matches that media type's schema
 * (openapi-response-validator on ajv with ajv-formats' full formats), every declared header is there.
 * Records which operations and statuses were seen, so a test can fail on what it never exercised.
 */
export class DocumentChecker {
  private readonly seen = new Map<string, Set<string>>();
  readonly mismatches: string[] = [];
  checked = 0;

  constructor(readonly document: OpenAPIV3.Document) {}

  /** `METHOD /path/{template}` of every operation in the document. */
  get operations(): string[] {
    return Object.entries(this.document.paths).flatMap(([path, item]) =>
      Object.keys(item ?? {})
        .filter((method) => ['get', 'post', 'put', 'patch', 'delete'].includes(method))
        .map((method) => `${method.toUpperCase()} ${path}`),
    );
  }

  operation(key: string): Operation {
    const [method, path] = key.split(' ');
    const found = (this.document.paths[path] as Record<string, Operation> | undefined)?.[method.toLowerCase()];
    if (!found) throw new Error(`${key} is not in the document`);
    return found;
  }

  /** Checks one response of operation `key` (`POST /api/v1/auth/signin`); returns it for further asserts. */
  check<T extends CheckedResponse>(key: string, res: T): T {
    const problems = this.problemsOf(key, res);
    this.checked += 1;
    if (!this.seen.has(key)) this.seen.set(key, new Set());
    this.seen.get(key)!.add(String(res.status));
    this.mismatches.push(...problems.map((problem) => `${key} -> ${res.status}: ${problem}`));
    return res;
  }

  private problemsOf(key: string, res: CheckedResponse): string[] {
    const response = this.operation(key).responses[String(res.status)] as OpenAPIV3.ResponseObject | undefined;
    if (!response) return [`status not documented (body ${res.text.slice(0, 200)})`];
    const problems: string[] = [];
    for (const name of Object.keys(response.headers ?? {})) {
      if (res.headers[name.toLowerCase()] === undefined) problems.push(`declared header ${name} missing`);
    }
    const mediaTypes = Object.keys(response.content ?? {});
    if (mediaTypes.length === 0) {
      if (res.text) problems.push('the document declares no body, one was sent');
      return problems;
    }
    const sent = String(res.headers['content-type'] ?? '').split(';')[0].trim();
    if (!mediaTypes.includes(sent)) return [...problems, `content type ${sent || '(none)'} is not one of ${mediaTypes.join(', ')}`];
    const schema = response.content![sent].schema;
    if (!schema) return problems;
    let body: unknown;
    try {
      body = JSON.parse(res.text);
    } catch {
      return [...problems, `body is not JSON: ${res.text.slice(0, 200)}`];
    }
    const validator = new OpenAPIResponseValidator({
      responses: { [res.status]: { schema } },
      components: this.document.components,
      customFormats: fullFormats,
    });
    const error = validator.validateResponse(res.status, body);
    if (error) problems.push(`body does not match the schema: ${JSON.stringify(error.errors)} in ${res.text.slice(0, 300)}`);
    return problems;
  }

  /** Operations of the document no response was checked for. */
  unexercisedOperations(): string[] {
    return this.operations.filter((key) => !this.seen.has(key));
  }

  /** `KEY -> status` for each documented status no checked response had. */
  unexercisedStatuses(): string[] {
    return this.operations.flatMap((key) =>
      Object.keys(this.operation(key).responses)
        .filter((status) => !this.seen.get(key)?.has(status))
        .map((status) => `${key} -> ${status}`),
    );
  }
}
