/**
 * Shell completion scripts made from the commander program itself (its commands, their
 * options, the choices of a value, which values are paths), so they cannot drift from what
 * the program accepts: `infermesh completion bash|zsh|fish`.
 */
import type { Command, Option } from 'commander';

export const SHELLS = ['bash', 'zsh', 'fish'] as const;
export type Shell = (typeof SHELLS)[number];

/** What completion needs to know of one option. */
interface FlagInfo {
  flags: string[];
  description: string;
  /** The option takes a value. */
  valued: boolean;
  /** Its value is a file (or folder) path: the shell completes names. */
  path: 'file' | 'dir' | undefined;
  choices: string[];
  repeatable: boolean;
}

interface CommandInfo {
  /** Words after the program's name, e.g. ['keys', 'create']; [] for the program. */
  path: string[];
  description: string;
  flags: FlagInfo[];
  commands: CommandInfo[];
  /** Choices of its first argument, when it has some (completion <shell>). */
  argumentChoices: string[];
}

function flagInfo(option: Option): FlagInfo {
  const valueName = /<([^>]+)>/.exec(option.flags)?.[1] ?? '';
  return {
    flags: [option.short, option.long].filter((f): f is string => Boolean(f)),
    description: firstLine(option.description),
    valued: option.required || option.optional,
    path: /^DIR$/.test(valueName) ? 'dir' : /^(FILE|PATH)$/.test(valueName) ? 'file' : undefined,
    choices: option.argChoices ?? [],
    repeatable: /\brepeatable\b/.test(option.description),
  };
}

const HELP_FLAG: FlagInfo = { flags: ['-h', '--help'], description: 'display help for command', valued: false, path: undefined, choices: [], repeatable: false };

function describe(cmd: Command, path: string[]): CommandInfo {
  const visible = cmd.options.filter((o) => !o.hidden).map(flagInfo);
  const commands = cmd.commands.map((c) => describe(c, [...path, c.name()]));
  return {
    path,
    description: firstLine(cmd.summary() || cmd.description()),
    flags: [...visible, HELP_FLAG],
    commands,
    argumentChoices: cmd.registeredArguments[0]?.argChoices ?? [],
  };
}

function firstLine(text: string): string {
  const line = text.split('\n')[0];
  return line.length > 80 ? `${line.slice(0, 77)}...` : line;
}

function all(info: CommandInfo): CommandInfo[] {
  return [info, ...info.commands.flatMap(all)];
}

/** The completion script of `shell` for `program`. */
export function completionScript(program: Command, shell: Shell): string {
  const info = describe(program, []);
  const name = program.name();
  switch (shell) {
    case 'bash':
      return bash(name, info);
    case 'zsh':
      return zsh(name, info);
    case 'fish':
      return fish(name, info);
  }
}

const fn = (name: string) => `_${name.replace(/[^A-Za-z0-9_]/g, '_')}`;

function bash(name: string, root: CommandInfo): string {
  const f = fn(name);
  const cases = (lines: (c: CommandInfo) => string | undefined) =>
    all(root).flatMap((c) => {
      const words = lines(c);
      return words === undefined ? [] : [`    "${c.path.join(' ')}") echo "${words}" ;;`];
    }).join('\n');
  const valued = cases((c) => c.flags.filter((o) => o.valued).flatMap((o) => o.flags).join(' '));
  const options = cases((c) => c.flags.flatMap((o) => o.flags).join(' '));
  const commands = cases((c) => (c.commands.length ? c.commands.map((s) => s.path.at(-1)).join(' ') : c.argumentChoices.length ? c.argumentChoices.join(' ') : undefined));
  const values = all(root).flatMap((c) =>
    c.flags.filter((o) => o.valued).flatMap((o) => {
      const what = o.choices.length ? `words ${o.choices.join(' ')}` : o.path ?? 'none';
      return o.flags.map((flag) => `    "${c.path.join(' ')} ${flag}") echo "${what}" ;;`);
    }),
  ).join('\n');
  return `# ${name} completion for bash, made by \`${name} completion bash\` from the program's own commands and options.
# Load it with: source <(${name} completion bash)

# The subcommands (or argument choices) of a command path.
${f}_commands() {
  case "$1" in
${commands}
  esac
}

# Every option of a command path.
${f}_options() {
  case "$1" in
${options}
  esac
}

# The options of a command path that take a value.
${f}_valued() {
  case "$1" in
${valued}
  esac
}

# What completes an option's value: "words ...", file, dir or none.
${f}_value() {
  case "$1" in
${values}
  esac
}

${f}() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="" path="" word skip=0 i
  ((COMP_CWORD > 0)) && prev="\${COMP_WORDS[COMP_CWORD-1]}"
  # The command path so far: words naming commands, skipping options and their values.
  for ((i = 1; i < COMP_CWORD; i++)); do
    word="\${COMP_WORDS[i]}"
    if ((skip)); then skip=0; continue; fi
    case "$word" in
      --*=*) ;;
      -*) case " $(${f}_valued "$path") " in *" $word "*) skip=1 ;; esac ;;
      *) case " $(${f}_commands "$path") " in *" $word "*) path="\${path:+$path }$word" ;; esac ;;
    esac
  done
  if ((COMP_CWORD > 1)) && [[ " $(${f}_valued "$path") " == *" $prev "* ]]; then
    local what
    what="$(${f}_value "$path $prev")"
    case "$what" in
      words\\ *) COMPREPLY=($(compgen -W "\${what#words }" -- "$cur")) ;;
      file) COMPREPLY=($(compgen -f -- "$cur")) ;;
      dir) COMPREPLY=($(compgen -d -- "$cur")) ;;
      *) COMPREPLY=() ;;
    esac
    return 0
  fi
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$(${f}_options "$path")" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$(${f}_commands "$path")" -- "$cur"))
  fi
  return 0
}

complete -o default -F ${f} ${name}
`;
}

const zshQuote = (text: string) => `'${text.replace(/'/g, `'\\''`)}'`;
const zshDescription = (text: string) => text.replace(/([[\]:\\])/g, '\\$1');

function zsh(name: string, root: CommandInfo): string {
  const functions = all(root).map((c) => {
    const f = `${fn(name)}${c.path.map((p) => `_${p.replace(/[^A-Za-z0-9]/g, '_')}`).join('')}`;
    const specs = c.flags.map((o) => {
      const value = o.valued ? `:${o.flags.at(-1)!.replace(/^-+/, '')}:${o.choices.length ? `(${o.choices.join(' ')})` : o.path === 'dir' ? '_directories' : o.path === 'file' ? '_files' : ' '}` : '';
      const text = `[${zshDescription(o.description)}]${value}`;
      // -h and --help exclude each other: '(-h --help)'{-h,--help}'[...]'
      return o.flags.length > 1 ? `'(${o.flags.join(' ')})'{${o.flags.join(',')}}${zshQuote(text)}` : zshQuote(`${o.repeatable ? '*' : ''}${o.flags[0]}${text}`);
    });
    if (c.commands.length === 0) {
      const argument = c.argumentChoices.length ? [zshQuote(`1:${c.path.at(-1)}:(${c.argumentChoices.join(' ')})`)] : [];
      return `${f}() {\n  _arguments -s \\\n    ${[...specs, ...argument].join(' \\\n    ')}\n}`;
    }
    const described = c.commands.map((s) => zshQuote(`${s.path.at(-1)}:${s.description.replace(/:/g, '\\:')}`));
    const cases = c.commands.map((s) => `      ${s.path.at(-1)}) ${f}_${s.path.at(-1)!.replace(/[^A-Za-z0-9]/g, '_')} ;;`).join('\n');
    return `${f}() {
  local curcontext="$curcontext" state line
  local -a commands
  _arguments -C \\
    ${specs.join(' \\\n    ')} \\
    '1: :->command' \\
    '*:: :->arguments'
  case $state in
    command)
      commands=(${described.join(' ')})
      _describe 'command' commands ;;
    arguments)
      case $line[1] in
${cases}
      esac ;;
  esac
}`;
  });
  return `#compdef ${name}
# ${name} completion for zsh, made by \`${name} completion zsh\` from the program's own commands and options.
# Load it with: source <(${name} completion zsh), or save it as _${name} in a folder of $fpath.

${functions.join('\n\n')}

if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
  ${fn(name)} "$@"
else
  compdef ${fn(name)} ${name}
fi
`;
}

const fishQuote = (text: string) => `'${text.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

function fish(name: string, root: CommandInfo): string {
  const lines: string[] = [`complete -c ${name} -f`];
  const names = (c: CommandInfo) => c.commands.map((s) => s.path.at(-1)).join(' ');
  for (const c of all(root)) {
    // In the command `c`: its own words seen, and none of its subcommands yet.
    const inside = [
      ...c.path.map((p) => `__fish_seen_subcommand_from ${p}`),
      ...(c.commands.length ? [`not __fish_seen_subcommand_from ${names(c)}`] : []),
    ];
    const condition = inside.length ? inside.join('; and ') : '__fish_use_subcommand';
    const when = c.path.length === 0 && c.commands.length ? `__fish_use_subcommand` : condition;
    for (const s of c.commands) lines.push(`complete -c ${name} -n ${fishQuote(when)} -a ${s.path.at(-1)} -d ${fishQuote(s.description)}`);
    for (const choice of c.argumentChoices) lines.push(`complete -c ${name} -n ${fishQuote(when)} -a ${choice}`);
    for (const o of c.flags) {
      const parts = o.flags.map((flag) => (flag.startsWith('--') ? `-l ${flag.slice(2)}` : `-s ${flag.slice(1)}`));
      if (o.valued) parts.push('-r');
      if (o.choices.length) parts.push(`-a ${fishQuote(o.choices.join(' '))}`);
      if (o.path) parts.push('-F');
      lines.push(`complete -c ${name} -n ${fishQuote(when)} ${parts.join(' ')} -d ${fishQuote(o.description)}`);
    }
  }
  return `# ${name} completion for fish, made by \`${name} completion fish\` from the program's own commands and options.
# Save it as ~/.config/fish/completions/${name}.fish
${lines.join('\n')}
`;
}
