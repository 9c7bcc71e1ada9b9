export * from './sqlite.dialect';
