export * from './postgres.dialect';
