import { ArgumentMetadata, ValidationError, ValidationPipe } from '@nestjs/common';
import { FieldError, ValidationFailedException } from './exceptions';

function flatten(errors: ValidationError[], parent = ''): FieldError[] {
  return errors.flatMap((error) => {
    // class-validator reports a body that is not an object (a string, an array) without a property name.
    if (!error.property) return [NOT_AN_OBJECT];
    const field = parent ? `${parent}.${error.property}` : error.property;
    const own = Object.values(error.constraints ?? {}).map((message) => ({ field, message }));
    return [...own, ...flatten(error.children ?? [], field)];
  });
}

const NOT_AN_OBJECT: FieldError = { field: 'body', message: 'body must be a JSON object' };

/** The body object is level 1; every DTO is flat, so this leaves room for what a client adds and is dropped. */
export const MAX_BODY_DEPTH = 5;
const TOO_DEEP: FieldError = { field: 'body', message: `body must not nest objects or arrays more than ${MAX_BODY_DEPTH} levels deep` };

/**
 * Whether objects or arrays nest below `MAX_BODY_DEPTH`. Iterative, and done before class-transformer,
 * which recurses once per level: 2,700 levels in 16 KiB overflowed its stack (a 500) after holding the
 * event loop for tens of milliseconds.
 */
function nestsTooDeep(body: object): boolean {
  const pending: [unknown, number][] = [[body, 1]];
  while (pending.length > 0) {
    const [value, depth] = pending.pop()!;
    if (typeof value !== 'object' || value === null) continue;
    if (depth > MAX_BODY_DEPTH) return true;
    for (const child of Object.values(value)) pending.push([child, depth + 1]);
  }
  return false;
}

/**
 * Validates bodies against their DTO and answers 422 with one `{field, message}` per broken rule.
 * Unknown properties are dropped, as the seed's Pydantic models ignore extra fields.
 */
class BodyValidationPipe extends ValidationPipe {
  override transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    // ValidationPipe would wrap a string, array or null into the DTO and report every field missing;
    // the real problem is the body's shape, so say that.
    if (['body', 'custom'].includes(metadata.type)) {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ValidationFailedException([NOT_AN_OBJECT]);
      if (nestsTooDeep(value)) throw new ValidationFailedException([TOO_DEEP]);
    }
    return super.transform(value, metadata);
  }
}

export function createValidationPipe(): ValidationPipe {
  return new BodyValidationPipe({
    // The module reads bodies through a custom decorator, out of reach of a host's global ValidationPipe.
    validateCustomDecorators: true,
    whitelist: true,
    transform: true,
    forbidUnknownValues: true,
    validationError: { target: false, value: false },
    exceptionFactory: (errors) => {
      const fieldErrors = flatten(errors);
      return new ValidationFailedException(
        fieldErrors.length > 0 ? fieldErrors : [NOT_AN_OBJECT],
      );
    },
  });
}
