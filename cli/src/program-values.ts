/**
 * Parsers of option values, for commander's argParser: each takes the text given after a flag
 * and returns the value the command gets, or throws commander's InvalidArgumentError, which
 * commander reports as "option '--top <K>' argument '0' is invalid. <reason>" (a usage error,
 * exit code 2) before any command runs.
 */
import { InvalidArgumentError } from 'commander';

/** Values longer than this are cut in messages (a mistyped value may be a whole file). */
const SHOWN = 64;

/** A whole number from `min` to `max`. */
export function wholeNumber(min: number, max = Number.MAX_SAFE_INTEGER): (text: string) => number {
  return (text) => {
    const n = Number(text);
    if (text.trim() === '' || !Number.isInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(max === Number.MAX_SAFE_INTEGER ? (min === 1 ? 'Expected a positive whole number.' : `Expected a whole number of at least ${min}.`) : `Expected a whole number from ${min} to ${max}.`);
    }
    return n;
  };
}

export const positiveInteger = wholeNumber(1);

/** A positive number, fractions allowed (a rate per second). */
export function positiveNumber(text: string): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('Expected a positive number.');
  return n;
}

/** Seconds from 0 to `max` (fractions allowed), returned as they are. */
export function seconds(max: number): (text: string) => number {
  return (text) => {
    const n = Number(text);
    if (text.trim() === '' || !Number.isFinite(n) || n < 0 || n > max) throw new InvalidArgumentError(`Expected seconds from 0 to ${max}.`);
    return n;
  };
}

/** "1,4,16": positive whole numbers, at most `max` of them. */
export function positiveIntegerList(max = 64): (text: string) => number[] {
  return (text) => {
    const parts = text.split(',').map((p) => p.trim());
    if (parts.length > max) throw new InvalidArgumentError(`Expected at most ${max} values, got ${parts.length}.`);
    return parts.map((part) => {
      const n = Number(part);
      if (part === '' || !Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`Expected positive whole numbers separated by commas ('${part.slice(0, SHOWN)}' is not one).`);
      return n;
    });
  };
}

/** "a,b": names separated by commas, blanks dropped, at least one. */
export function nameList(text: string): string[] {
  const names = text.split(',').map((n) => n.trim()).filter(Boolean);
  if (names.length === 0) throw new InvalidArgumentError('Expected one or more names separated by commas.');
  return names;
}

/** For a repeatable option: each use adds its value. */
export function collect<T = string>(parse: (text: string) => T = (text) => text as T): (text: string, previous: T[] | undefined) => T[] {
  return (text, previous) => [...(previous ?? []), parse(text)];
}

/**
 * A parser from the commands' own checks, which throw an Error naming the flag
 * ("--weights: '1=x' is not VERSION=WEIGHT"): their message becomes the reason, without the
 * flag commander names already.
 */
export function fromCheck<T>(check: (text: string) => T): (text: string) => T {
  return (text) => {
    try {
      return check(text);
    } catch (error) {
      const message = (error as Error).message.replace(/^--[a-z0-9-]+:?\s+/, '');
      throw new InvalidArgumentError(`${message.charAt(0).toUpperCase()}${message.slice(1)}${/[.)]$/.test(message) ? '' : '.'}`);
    }
  };
}

/** A router address for commands that speak gRPC only: HOST:PORT (or grpc://HOST:PORT). */
export function grpcAddress(text: string): string {
  if (/^https?:\/\//i.test(text)) throw new InvalidArgumentError('This command speaks gRPC to the router: give HOST:PORT (the router\'s gRPC port, 8001 by default).');
  if (text.trim() === '') throw new InvalidArgumentError('Expected HOST:PORT.');
  return text.replace(/^grpc:\/\//i, '');
}

/** A router address for commands that use @infermesh/client: HOST:PORT (gRPC), grpc(s)://, or http(s):// (REST). */
export function anyAddress(text: string): string {
  if (text.trim() === '') throw new InvalidArgumentError('Expected HOST:PORT, grpc://HOST:PORT or http://HOST:PORT.');
  if (/^[a-z]+:\/\//i.test(text) && !/^(grpcs?|https?):\/\//i.test(text)) throw new InvalidArgumentError('Expected HOST:PORT, grpc://, grpcs://, http:// or https://.');
  return text;
}
