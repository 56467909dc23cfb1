import { ArgumentMetadata, ValidationPipe } from '@nestjs/common';
import { Type } from 'class-transformer';
import { IsInt, IsString, Min, MinLength, validate, ValidateNested, ValidationError } from 'class-validator';
import { SignInDto } from '../auth/dto/requests.dto';
import { ValidationFailedException } from './exceptions';
import { createValidationPipe } from './validation.pipe';

class Street {
  @IsString()
  @MinLength(2)
  name: string;

  @IsInt()
  @Min(1)
  number: number;
}

class Address {
  @ValidateNested()
  @Type(() => Street)
  street: Street;

  @IsString()
  city: string;
}

class Item {
  @IsString()
  sku: string;
}

class Order {
  @IsString()
  reference: string;

  @ValidateNested()
  @Type(() => Address)
  address: Address;

  @ValidateNested({ each: true })
  @Type(() => Item)
  items: Item[];
}

function bodyOf(metatype: ArgumentMetadata['metatype']): ArgumentMetadata {
  return { type: 'body', metatype };
}

async function rejectionOf(sut: ValidationPipe, value: unknown, metatype: ArgumentMetadata['metatype']): Promise<ValidationFailedException> {
  try {
    await sut.transform(value, bodyOf(metatype));
  } catch (error) {
    if (error instanceof ValidationFailedException) return error;
    throw error;
  }
  throw new Error('expected the pipe to reject the value');
}

describe(createValidationPipe.name, () => {
  let sut: ValidationPipe;

  beforeEach(() => {
    sut = createValidationPipe();
  });

  it('passes a valid body through as an instance of its DTO', async () => {
    const dto = await sut.transform({ email: ' ada@example.com ', password: 'secret' }, bodyOf(SignInDto));

    expect(dto).toBeInstanceOf(SignInDto);
    expect(dto).toEqual({ email: 'ada@example.com', password: 'secret' });
  });

  it('drops unknown properties', async () => {
    const dto = await sut.transform({ email: 'ada@example.com', password: 'secret', is_admin: true }, bodyOf(SignInDto));

    expect(dto).not.toHaveProperty('is_admin');
  });

  it('rejects a bad body with 422 and one error per broken rule', async () => {
    const error = await rejectionOf(sut, { email: 'not-an-email', password: '' }, SignInDto);

    expect(error.getStatus()).toBe(422);
    expect(error.errors).toEqual([
      { field: 'email', message: 'email must be a valid email address' },
      { field: 'password', message: 'password must be between 1 and 128 characters long' },
    ]);
  });

  it('gives nested errors dotted field names', async () => {
    const error = await rejectionOf(
      sut,
      { reference: 'A-1', address: { street: { name: 'x', number: 0 }, city: 7 }, items: [{ sku: 'ok' }, { sku: 3 }] },
      Order,
    );

    expect(error.errors).toEqual(
      expect.arrayContaining([
        { field: 'address.street.name', message: 'name must be longer than or equal to 2 characters' },
        { field: 'address.street.number', message: 'number must not be less than 1' },
        { field: 'address.city', message: 'city must be a string' },
        { field: 'items.1.sku', message: 'sku must be a string' },
      ]),
    );
    expect(error.errors.map((fieldError) => fieldError.field)).not.toContain('reference');
    expect(error.errors.map((fieldError) => fieldError.field)).not.toContain('items.0.sku');
    expect(error.errors).toHaveLength(4);
  });

  it('shows no submitted value in its messages', async () => {
    const error = await rejectionOf(sut, { email: 'hunter2-secret', password: 'x'.repeat(129) }, SignInDto);

    expect(JSON.stringify(error.errors)).not.toContain('hunter2-secret');
    expect(JSON.stringify(error.errors)).not.toContain('xxxxxxxx');
  });

  it.each([
    ['a string', 'hello'],
    ['a number', 42],
    ['an array', [{ email: 'ada@example.com', password: 'secret' }]],
    ['null', null],
  ])('rejects %s as a body with 422', async (_case, body) => {
    const error = await rejectionOf(sut, body, SignInDto);

    expect(error.getStatus()).toBe(422);
    expect(error.errors.length).toBeGreaterThan(0);
  });

  it('refuses a body nested deeper than 5 levels before transforming it (class-transformer would overflow its stack on it)', async () => {
    const levels = 2700; // what fits in 16 KiB; class-transformer overflowed its stack on it
    const deepObject = JSON.parse(`{"email":${'{"a":'.repeat(levels)}1${'}'.repeat(levels)},"password":"x"}`);
    const deepArray = JSON.parse(`{"email":${'['.repeat(levels)}${']'.repeat(levels)},"password":"x"}`);
    for (const body of [deepObject, deepArray]) {
      const error = await rejectionOf(sut, body, SignInDto);
      expect(error.errors).toEqual([{ field: 'body', message: 'body must not nest objects or arrays more than 5 levels deep' }]);
    }
  });

  it('accepts nesting down to the 5th level', async () => {
    const dto = await sut.transform({ email: 'ada@example.com', password: 'secret', extra: { a: [{ b: [1] }] } }, bodyOf(SignInDto));

    expect(dto).toEqual({ email: 'ada@example.com', password: 'secret' });
  });

  it('reports a value class-validator finds no object in as the field "body"', async () => {
    // What class-validator answers for a value it cannot treat as an instance: no property name.
    const errors = await validate('not an object' as unknown as object, { forbidUnknownValues: true });
    expect(errors).toHaveLength(1);
    expect(errors[0].property).toBeFalsy();
    const exceptionFactory = sut['exceptionFactory'] as (errors: ValidationError[]) => ValidationFailedException;

    const error = exceptionFactory(errors);

    expect(error).toBeInstanceOf(ValidationFailedException);
    expect(error.errors).toEqual([{ field: 'body', message: 'body must be a JSON object' }]);
  });

  it('never answers 422 without at least one field error', async () => {
    const exceptionFactory = sut['exceptionFactory'] as (errors: ValidationError[]) => ValidationFailedException;

    expect(exceptionFactory([]).errors).toEqual([{ field: 'body', message: 'body must be a JSON object' }]);
  });

  it.each([
    ['a string', 'hello'],
    ['an array', [{ email: 'ada@example.com', password: 'secret' }]],
    ['null', null],
  ])('reports %s as the single field "body"', async (_case, body) => {
    const error = await rejectionOf(sut, body, SignInDto);

    expect(error.errors).toEqual([{ field: 'body', message: 'body must be a JSON object' }]);
  });
});
