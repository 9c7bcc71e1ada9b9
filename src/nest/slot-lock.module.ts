import {
  Module,
  type DynamicModule,
  type InjectionToken,
  type ModuleMetadata,
  type OptionalFactoryDependency,
  type Provider,
  type Type,
} from '@nestjs/common';
import { getDataSourceToken } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import type { SlotLockServiceOptions } from '../services/slot-lock.options';
import { SlotLockService } from '../services/slot-lock.service';
import { SlotLockEventLogger } from './slot-lock.event-logger';
import { SlotLockHealthIndicator } from './slot-lock.health';
import {
  checkDataSourceName,
  getSlotLockHealthIndicatorToken,
  getSlotLockOptionsToken,
  getSlotLockServiceToken,
} from './slot-lock.tokens';

/**
 * Options of {@link SlotLockModule.forRoot}: the {@link SlotLockServiceOptions} of the
 * service (`tableName`, default `'drydock_slotlock'`; `maxKeyBytes`, default `65535`;
 * `retry`, default `{ attempts: 10, baseDelayMs: 5, maxDelayMs: 250 }`) and where the
 * module puts it.
 */
export interface SlotLockModuleOptions extends SlotLockServiceOptions {
  /**
   * The @nestjs/typeorm data source the service runs on: the `name` given to
   * `TypeOrmModule.forRoot({ name, ... })`. A named data source's service is injected
   * with `@InjectSlotLockService(name)`.
   * Default: the default data source (`TypeOrmModule.forRoot()` without `name`), whose
   * service is injected by its class.
   */
  readonly dataSourceName?: string;
  /**
   * If `true`, the module is global: every module can inject the service without
   * importing `SlotLockModule`.
   * Default: `false`.
   */
  readonly isGlobal?: boolean;
  /**
   * If `true`, the events of the service (locks acquired, conflicts, releases, contention
   * retries) are written to Nest's `Logger`, context `SlotLock`: acquisitions and releases at
   * `log`, conflicts at `warn`, retries at `debug`. The channels are the process's, so every
   * service's events are logged once, whichever module asked.
   * Default: `false`.
   */
  readonly logEvents?: boolean;
}

/** A class that supplies the service's options, for {@link SlotLockModule.forRootAsync} with `useClass` or `useExisting`. */
export interface SlotLockOptionsFactory {
  /**
   * The options of the service.
   * @param dataSourceName - the `dataSourceName` given to `forRootAsync` (undefined for the default data source).
   */
  createSlotLockOptions(dataSourceName?: string): SlotLockServiceOptions | Promise<SlotLockServiceOptions>;
}

/**
 * Options of {@link SlotLockModule.forRootAsync}: give exactly one of `useFactory`,
 * `useClass` or `useExisting`. `dataSourceName`, `isGlobal` and `logEvents` sit here
 * rather than in what the factory returns, because they decide which providers the
 * module has.
 */
export interface SlotLockModuleAsyncOptions {
  /**
   * The @nestjs/typeorm data source the service runs on: the `name` given to
   * `TypeOrmModule.forRoot({ name, ... })`.
   * Default: the default data source.
   */
  readonly dataSourceName?: string;
  /**
   * If `true`, the module is global: every module can inject the service without
   * importing `SlotLockModule`.
   * Default: `false`.
   */
  readonly isGlobal?: boolean;
  /**
   * If `true`, the events of the service are written to Nest's `Logger` (see
   * {@link SlotLockModuleOptions.logEvents}).
   * Default: `false`.
   */
  readonly logEvents?: boolean;
  /**
   * Modules whose exported providers `useFactory`, `useClass` or `useExisting` need
   * (e.g. `ConfigModule`).
   * Default: none.
   */
  readonly imports?: ModuleMetadata['imports'];
  /**
   * Returns the service's options, or a promise of them; it receives the providers
   * listed in `inject`, in that order.
   */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the factory's parameters are whatever `inject` lists
  readonly useFactory?: (...args: any[]) => SlotLockServiceOptions | Promise<SlotLockServiceOptions>;
  /**
   * Providers passed to `useFactory`, in order.
   * Default: none.
   */
  readonly inject?: Array<InjectionToken | OptionalFactoryDependency>;
  /** A {@link SlotLockOptionsFactory} the module instantiates itself to get the options. */
  readonly useClass?: Type<SlotLockOptionsFactory>;
  /** A {@link SlotLockOptionsFactory} provider that already exists (from `imports` or a global module). */
  readonly useExisting?: Type<SlotLockOptionsFactory>;
}

/**
 * Registers a {@link SlotLockService} on a @nestjs/typeorm data source, so that providers
 * can inject it. The module only wires: the service is built with
 * `new SlotLockService(dataSource, options)`, the data source being the one
 * `TypeOrmModule` provides (and closes on `app.close()`).
 *
 * Exports the service (token {@link getSlotLockServiceToken}), its options (token
 * {@link getSlotLockOptionsToken}) and a {@link SlotLockHealthIndicator} on it (token
 * {@link getSlotLockHealthIndicatorToken}); with `logEvents: true` it also writes the
 * service's events to Nest's `Logger`.
 *
 * @example
 * ```ts
 * @Module({
 *   imports: [
 *     TypeOrmModule.forRoot({ type: 'mariadb', url, entities: [DrydockSlotLock], migrations: [...slotLockMigrations] }),
 *     SlotLockModule.forRoot({ retry: { attempts: 5 } }),
 *   ],
 *   providers: [LeaseService], // constructor(private readonly slotLocks: SlotLockService)
 * })
 * export class AppModule {}
 * ```
 */
@Module({})
export class SlotLockModule {
  /** Registers the service with options known up front. */
  static forRoot(options: SlotLockModuleOptions = {}): DynamicModule {
    if (typeof options !== 'object' || options === null) {
      throw new TypeError('SlotLockModule.forRoot(options): options must be an object');
    }
    const { dataSourceName, isGlobal, logEvents, ...serviceOptions } = options;
    checkPlacement(dataSourceName, isGlobal, logEvents);
    return buildModule({ dataSourceName, isGlobal, logEvents }, [], {
      provide: getSlotLockOptionsToken(dataSourceName),
      useValue: serviceOptions,
    });
  }

  /** Registers the service with options that come from other providers (configuration, secrets…). */
  static forRootAsync(options: SlotLockModuleAsyncOptions): DynamicModule {
    if (typeof options !== 'object' || options === null) {
      throw new TypeError('SlotLockModule.forRootAsync(options): options must be an object');
    }
    const {
      dataSourceName,
      isGlobal,
      logEvents,
      imports = [],
      useFactory,
      inject = [],
      useClass,
      useExisting,
    } = options;
    checkPlacement(dataSourceName, isGlobal, logEvents);
    const placement = { dataSourceName, isGlobal, logEvents };
    const given = [useFactory, useClass, useExisting].filter((value) => value !== undefined).length;
    if (given !== 1) {
      throw new TypeError(
        'SlotLockModule.forRootAsync(options): give exactly one of useFactory, useClass or useExisting',
      );
    }
    const optionsToken = getSlotLockOptionsToken(dataSourceName);
    if (useFactory !== undefined) {
      if (typeof useFactory !== 'function') {
        throw new TypeError('SlotLockModule.forRootAsync(options): useFactory must be a function');
      }
      return buildModule(placement, imports, {
        provide: optionsToken,
        useFactory: async (...args: unknown[]) => checkAsyncResult(await useFactory(...args)),
        inject,
      });
    }
    const factoryClass = useClass ?? useExisting;
    if (typeof factoryClass !== 'function') {
      throw new TypeError('SlotLockModule.forRootAsync(options): useClass and useExisting must be a class');
    }
    const optionsProvider: Provider = {
      provide: optionsToken,
      useFactory: async (factory: SlotLockOptionsFactory) =>
        checkAsyncResult(await factory.createSlotLockOptions(dataSourceName)),
      inject: [factoryClass],
    };
    return buildModule(
      placement,
      imports,
      optionsProvider,
      ...(useClass !== undefined ? [{ provide: useClass, useClass }] : []),
    );
  }
}

/** The module-level options: which data source, where the module is visible, whether it logs. */
interface Placement {
  readonly dataSourceName: string | undefined;
  readonly isGlobal: boolean | undefined;
  readonly logEvents: boolean | undefined;
}

/** The module for one data source: its options provider, the service and its health indicator, all exported. */
function buildModule(
  { dataSourceName, isGlobal, logEvents }: Placement,
  imports: NonNullable<ModuleMetadata['imports']>,
  optionsProvider: Provider,
  ...extraProviders: Provider[]
): DynamicModule {
  const serviceToken = getSlotLockServiceToken(dataSourceName);
  const optionsToken = getSlotLockOptionsToken(dataSourceName);
  const healthToken = getSlotLockHealthIndicatorToken(dataSourceName);
  const serviceProvider: Provider = {
    provide: serviceToken,
    useFactory: (dataSource: DataSource, serviceOptions: SlotLockServiceOptions) =>
      new SlotLockService(dataSource, serviceOptions),
    inject: [getDataSourceToken(dataSourceName), optionsToken],
  };
  // The service may open a connection of its own (SQLite); close it before TypeOrmModule
  // destroys the data source at shutdown (onModuleDestroy runs before onApplicationShutdown).
  const closerProvider: Provider = {
    provide: Symbol(`SlotLockServiceCloser(${dataSourceName ?? 'default'})`),
    useFactory: (service: SlotLockService) => ({ onModuleDestroy: () => service.close() }),
    inject: [serviceToken],
  };
  const healthProvider: Provider = {
    provide: healthToken,
    useFactory: (service: SlotLockService) => new SlotLockHealthIndicator(service),
    inject: [serviceToken],
  };
  return {
    module: SlotLockModule,
    global: isGlobal ?? false,
    imports,
    providers: [
      optionsProvider,
      ...extraProviders,
      serviceProvider,
      closerProvider,
      healthProvider,
      ...(logEvents === true ? [SlotLockEventLogger] : []),
    ],
    exports: [serviceToken, optionsToken, healthToken],
  };
}

/** Checks where the module goes, before any token is made from it. */
function checkPlacement(dataSourceName: unknown, isGlobal: unknown, logEvents: unknown): void {
  checkDataSourceName(dataSourceName, 'options.dataSourceName');
  for (const [field, value] of [
    ['isGlobal', isGlobal],
    ['logEvents', logEvents],
  ] as const) {
    if (value !== undefined && typeof value !== 'boolean') {
      throw new TypeError(`options.${field} must be a boolean, got ${String(value)}`);
    }
  }
}

/** What an async options source returned: the service's options, without the module's own fields. */
function checkAsyncResult(value: SlotLockServiceOptions): SlotLockServiceOptions {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null) {
    throw new TypeError('SlotLockModule.forRootAsync(): the options factory must return an object (or undefined)');
  }
  for (const field of ['dataSourceName', 'isGlobal', 'logEvents'] as const) {
    if (field in value) {
      throw new TypeError(
        `SlotLockModule.forRootAsync(): ${field} goes next to useFactory/useClass/useExisting, not in the options they return`,
      );
    }
  }
  return value;
}
