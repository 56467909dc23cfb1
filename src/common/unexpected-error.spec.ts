import { BadRequestException, Get, HttpCode, HttpStatus } from '@nestjs/common';
import { HTTP_CODE_METADATA, METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants';
import { InternalErrorException } from './exceptions';
import { OnUnexpectedError } from './unexpected-error';

class Routes {
  constructor(private readonly failure: unknown) {}

  @Get('before')
  @OnUnexpectedError('Could not do it')
  @HttpCode(HttpStatus.ACCEPTED)
  async act(value: string): Promise<string> {
    if (this.failure) throw this.failure;
    return `done ${value}`;
  }
}

describe(OnUnexpectedError.name, () => {
  it('answers as the handler does, with its instance and arguments', async () => {
    await expect(new Routes(null).act('now')).resolves.toBe('done now');
  });

  it("turns an unexpected error into a 500 with the route's detail, keeping the cause", async () => {
    const cause = new Error('relation "users" does not exist');
    const thrown = await new Routes(cause).act('x').catch((error: unknown) => error);
    expect(thrown).toBeInstanceOf(InternalErrorException);
    expect((thrown as InternalErrorException).getStatus()).toBe(500);
    expect((thrown as InternalErrorException).message).toBe('Could not do it');
    expect((thrown as InternalErrorException).cause).toBe(cause);
  });

  it("lets the route's own HTTP errors through", async () => {
    const refusal = new BadRequestException('Invalid token');
    await expect(new Routes(refusal).act('x')).rejects.toBe(refusal);
  });

  it('keeps the metadata of the decorators applied before it and leaves room for those after', () => {
    const handler = Routes.prototype.act;
    expect(Reflect.getMetadata(HTTP_CODE_METADATA, handler)).toBe(HttpStatus.ACCEPTED); // applied first
    expect(Reflect.getMetadata(PATH_METADATA, handler)).toBe('before'); // applied last, on the wrapper
    expect(Reflect.getMetadata(METHOD_METADATA, handler)).toBeDefined();
    expect(handler.name).toBe('act');
  });
});
