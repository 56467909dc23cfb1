/** Every `detail` the auth API answers with, in one place. The wording is part of the contract (SPEC.md). */
export const AuthErrors = {
  EMAIL_ALREADY_REGISTERED: 'Email already registered',
  USERNAME_ALREADY_TAKEN: 'Username already taken',
  INVALID_CREDENTIALS: 'Invalid email or password',
  INACTIVE_USER: 'User account is inactive',
  EMAIL_NOT_VERIFIED: 'Email not verified',
  INVALID_RESET_TOKEN: 'Invalid or expired token',
  INVALID_VERIFICATION_TOKEN: 'Invalid or expired token',
  USER_NOT_FOUND: 'User not found',
  INCORRECT_CURRENT_PASSWORD: 'Incorrect current password',
  NOT_AUTHENTICATED: 'Not authenticated',
  INVALID_ACCESS_TOKEN: 'Could not validate credentials',
  TOO_MANY_REQUESTS: 'Too many requests, try again later',
  BUSY: 'The service is busy, try again in a moment',
  TOO_MANY_MAIL_REQUESTS: 'Too many requests for this email address, try again later',
  TOO_MANY_SIGNIN_FAILURES: 'Too many failed sign-in attempts for this account, try again later',
  SIGNUP_FAILED: 'Error during registration',
  SIGNIN_FAILED: 'Error during sign in',
  FORGOT_PASSWORD_FAILED: 'Error processing password reset request',
  RESET_PASSWORD_FAILED: 'Error resetting password',
  CHANGE_PASSWORD_FAILED: 'Error changing password',
  VERIFY_EMAIL_FAILED: 'Error verifying email',
  RESEND_VERIFICATION_FAILED: 'Error processing verification request',
} as const;

export const AuthMessages = {
  RESET_EMAIL_SENT: 'If the email is registered, a password reset link has been sent',
  PASSWORD_RESET: 'Password reset successfully',
  PASSWORD_CHANGED: 'Password changed successfully',
  EMAIL_VERIFIED: 'Email verified successfully',
  VERIFICATION_EMAIL_SENT: 'If the email is registered and not yet verified, a verification link has been sent',
} as const;
