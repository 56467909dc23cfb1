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

/**
 * Validates bodies against their DTO and answers 422 with one `{field, message}` per broken rule.
 * Unknown properties are dropped, as the seed's Pydantic models ignore extra fields.
 */
class BodyValidationPipe extends ValidationPipe {
  override transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    // ValidationPipe would wrap a string, array or null into the DTO and report every field missing;
    // the real problem is the body's shape, so say that.
    if (['body', 'custom'].includes(metadata.type) && (typeof value !== 'object' || value === null || Array.isArray(value))) {
      throw new ValidationFailedException([NOT_AN_OBJECT]);
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
