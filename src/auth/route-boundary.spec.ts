import { fastifyFrameworkErrors } from './route-boundary';

function replyFake() {
  const sent: { status?: number; headers: Record<string, string>; body?: unknown } = { headers: {} };
  const reply = {
    status(code: number) {
      sent.status = code;
      return reply;
    },
    header(name: string, value: string) {
      sent.headers[name] = value;
      return reply;
    },
    send(body: string) {
      sent.body = JSON.parse(body);
      return reply;
    },
  };
  return { reply, sent };
}

describe(fastifyFrameworkErrors.name, () => {
  it.each([
    ['FST_ERR_MAX_PARAM_LENGTH', 414, 'Request path segment is too long'],
    ['FST_ERR_BAD_URL', 400, 'Malformed request path: it is not valid percent-encoding'],
    ['FST_ERR_ASYNC_CONSTRAINT', 500, 'Internal Server Error'],
  ])('answers %s with %i problem details that do not quote the path', (code, status, detail) => {
    const { reply, sent } = replyFake();

    fastifyFrameworkErrors({ code, message: "'/api/v1/auth/sessions/secret' is exceeding the max param length" } as { code: string }, {}, reply);

    expect(sent.status).toBe(status);
    expect(sent.headers['Content-Type']).toBe('application/problem+json');
    expect(sent.body).toEqual({ type: 'about:blank', title: expect.any(String), status, detail });
  });
});
