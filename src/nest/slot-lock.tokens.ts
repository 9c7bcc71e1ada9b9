import { Inject } from '@nestjs/common';
import { SlotLockService } from '../services/slot-lock.service';
import { SlotLockHealthIndicator } from './slot-lock.health';

/** The name @nestjs/typeorm gives the data source of a `TypeOrmModule.forRoot()` without `name`. */
const DEFAULT_DATA_SOURCE_NAME = 'default';

/** True for the default data source: no name, or @nestjs/typeorm's `'default'`. */
function isDefaultDataSource(dataSourceName: string | undefined): dataSourceName is undefined | 'default' {
  return dataSourceName === undefined || dataSourceName === DEFAULT_DATA_SOURCE_NAME;
}

/** Throws a `TypeError` unless `dataSourceName` is left out or a non-empty string. */
export function checkDataSourceName(dataSourceName: unknown, argumentName = 'dataSourceName'): string | undefined {
  if (dataSourceName === undefined) return undefined;
  if (typeof dataSourceName !== 'string' || dataSourceName === '') {
    throw new TypeError(
      `${argumentName} must be the name of a TypeOrmModule data source (a non-empty string), got ${String(dataSourceName)}`,
    );
  }
  return dataSourceName;
}

/**
 * The injection token of the {@link SlotLockService} that `SlotLockModule` registers for a
 * data source: the class itself for the default data source (so that a plain
 * `constructor(private readonly slotLocks: SlotLockService)` works), and the string
 * `SlotLockService:<name>` for a named one.
 *
 * @param dataSourceName - the @nestjs/typeorm data source name. Default: the default data source.
 */
export function getSlotLockServiceToken(dataSourceName?: string): typeof SlotLockService | string {
  const name = checkDataSourceName(dataSourceName);
  return isDefaultDataSource(name) ? SlotLockService : `SlotLockService:${name}`;
}

/**
 * The injection token of the options `SlotLockModule` passes to the {@link SlotLockService}
 * of a data source (as given, before defaults: the service's `options` getter has them
 * resolved): `SlotLockModuleOptions` for the default data source, and
 * `SlotLockModuleOptions:<name>` for a named one.
 *
 * @param dataSourceName - the @nestjs/typeorm data source name. Default: the default data source.
 */
export function getSlotLockOptionsToken(dataSourceName?: string): string {
  const name = checkDataSourceName(dataSourceName);
  return isDefaultDataSource(name) ? 'SlotLockModuleOptions' : `SlotLockModuleOptions:${name}`;
}

/**
 * The injection token of the {@link SlotLockHealthIndicator} that `SlotLockModule` registers
 * for a data source: the class itself for the default data source, and the string
 * `SlotLockHealthIndicator:<name>` for a named one
 * (`@Inject(getSlotLockHealthIndicatorToken('phorge'))`).
 *
 * @param dataSourceName - the @nestjs/typeorm data source name. Default: the default data source.
 */
export function getSlotLockHealthIndicatorToken(dataSourceName?: string): typeof SlotLockHealthIndicator | string {
  const name = checkDataSourceName(dataSourceName);
  return isDefaultDataSource(name) ? SlotLockHealthIndicator : `SlotLockHealthIndicator:${name}`;
}

/**
 * Injects the {@link SlotLockService} of a data source: `Inject(getSlotLockServiceToken(dataSourceName))`.
 * Needed for a named data source; for the default one the parameter's type is enough.
 *
 * @param dataSourceName - the @nestjs/typeorm data source name. Default: the default data source.
 *
 * @example
 * ```ts
 * constructor(@InjectSlotLockService('reporting') private readonly reportingLocks: SlotLockService) {}
 * ```
 */
export function InjectSlotLockService(dataSourceName?: string): PropertyDecorator & ParameterDecorator {
  return Inject(getSlotLockServiceToken(dataSourceName));
}
