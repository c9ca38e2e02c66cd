export { S3Driver, type S3DriverOptions } from './driver.js';
export { makeClient, type S3Options } from './client.js';
