import { QueryFailedError } from 'typeorm';

/** The fields of a driver error that the dialects read. */
export interface DriverErrorFields {
  readonly errno?: number;
  readonly code?: string;
  readonly message?: string;
}

/**
 * The driver's own error: TypeORM wraps it in `QueryFailedError.driverError`, while
 * connection failures arrive unwrapped.
 */
export function driverErrorOf(error: unknown): DriverErrorFields | undefined {
  if (error instanceof QueryFailedError) return error.driverError as DriverErrorFields;
  if (typeof error === 'object' && error !== null) return error as DriverErrorFields;
  return undefined;
}
