export * from './mysql.dialect';
