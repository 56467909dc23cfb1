import { ValidationError, ValidationPipe } from '@nestjs/common';
import { FieldError, ValidationFailedException } from './exceptions';

function flatten(errors: ValidationError[], parent = ''): FieldError[] {
  return errors.flatMap((error) => {
    // class-validator reports a body that is not an object (a string, an array) without a property name.
    if (!error.property) return [{ field: 'body', message: 'body must be a JSON object' }];
    const field = parent ? `${parent}.${error.property}` : error.property;
    const own = Object.values(error.constraints ?? {}).map((message) => ({ field, message }));
    return [...own, ...flatten(error.children ?? [], field)];
  });
}

/**
 * Validates bodies against their DTO and answers 422 with one `{field, message}` per broken rule.
 * Unknown properties are dropped, as the seed's Pydantic models ignore extra fields.
 */
export function createValidationPipe(): ValidationPipe {
  return new ValidationPipe({
    whitelist: true,
    transform: true,
    forbidUnknownValues: true,
    validationError: { target: false, value: false },
    exceptionFactory: (errors) => {
      const fieldErrors = flatten(errors);
      return new ValidationFailedException(
        fieldErrors.length > 0 ? fieldErrors : [{ field: 'body', message: 'body must be a JSON object' }],
      );
    },
  });
}
