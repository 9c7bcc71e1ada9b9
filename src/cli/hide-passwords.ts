import { passwordOfUrl, redactUrl } from '../config/database-url';

/**
 * The last guard of "no message shows a password": every line slotlock prints about a
 * failure goes through {@link hidePasswords}. slotlock's own messages name URLs through
 * `redactUrl` already; this catches text it does not word itself (a driver's or
 * TypeORM's message under "unexpected error", a stack trace with SLOTLOCK_DEBUG=1).
 */
const passwords = new Set<string>();

/**
 * Shorter strings are ordinary text ("pw" is in "npm install pg"): hiding them would
 * garble messages without hiding anything a reader could pick out. URLs in a message
 * lose their password whatever its length (see {@link hidePasswords}).
 */
const MIN_HIDDEN_LENGTH = 4;

/** Something that looks like a URL with an authority, up to a blank or a quote. */
const URL_IN_TEXT = /\b[a-z][a-z0-9+.-]*:\/\/[^\s"'`<>]+/gi;

/** Remembers the password of `url` (as written, and decoded) for {@link hidePasswords}. */
export function rememberPassword(url: string): void {
  const written = passwordOfUrl(url);
  if (written === undefined) return;
  for (const form of [written, decodedOrUndefined(written)]) {
    if (form !== undefined && form.length >= MIN_HIDDEN_LENGTH) passwords.add(form);
  }
}

/** Where a URL starts inside a command-line argument (`--url=mysql://…`, `--ur=…`, or the URL alone). */
const URL_START = /[a-z][a-z0-9+.-]*:\/\//i;

/**
 * Remembers the password of every URL in the command line, before commander reads it:
 * its usage errors quote what was typed (an unknown `--URL=…`, a URL given to `--wait`),
 * and an argument's end is where its URL ends, whatever the password holds (a quote or
 * a blank stops the search for URLs in running text, not here).
 */
export function rememberPasswordsOfArguments(argv: readonly string[]): void {
  for (const argument of argv) {
    const start = URL_START.exec(argument)?.index;
    if (start !== undefined) rememberPassword(argument.slice(start));
  }
}

/** `text` with the password of every URL in it, and every remembered password, replaced by `***`. */
export function hidePasswords(text: string): string {
  let hidden = text.replace(URL_IN_TEXT, (url) => redactUrl(url));
  for (const password of passwords) hidden = hidden.split(password).join('***');
  return hidden;
}

function decodedOrUndefined(text: string): string | undefined {
  try {
    return decodeURIComponent(text);
  } catch {
    return undefined;
  }
}
