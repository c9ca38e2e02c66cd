import type { CAC, Command } from 'cac';
import { GROUPS } from './commands.js';
import { rootCli, subCli } from './program.js';
import { ExitError } from './errors.js';

/** What a completion script offers: words after `wharf`, and the flags and actions of each. */
interface Word {
  name: string;
  description: string;
  flags: Array<{ long: string; short?: string; takesValue: boolean; description: string }>;
  actions?: Word[];
}

function flagsOf(cmd: Command, global: Command): Word['flags'] {
  return [...cmd.options, ...global.options].map((o) => {
    const names = o.rawName.split(/[\s,]+/).filter((f) => f.startsWith('-'));
    return {
      long: names.find((n) => n.startsWith('--')) ?? names[0]!,
      short: names.find((n) => /^-[^-]/.test(n)),
      takesValue: /[<[]/.test(o.rawName),
      description: o.description,
    };
  });
}

function wordsOf(cli: CAC): Word[] {
  return cli.commands.flatMap((c) => [c.name, ...c.aliasNames].map((name) => ({ name, description: c.description, flags: flagsOf(c, cli.globalCommand) })));
}

/** Every command, alias and group action of the CLI, read from the same cac definitions it runs. */
export function completionModel(): Word[] {
  const words = wordsOf(rootCli());
  for (const g of GROUPS) {
    const actions = wordsOf(subCli(g));
    const w = words.find((x) => x.name === g.name);
    if (w) w.actions = actions;
    else words.push({ name: g.name, description: g.description, flags: [], actions });
  }
  return words;
}

const flagList = (w: Word): string => w.flags.flatMap((f) => (f.short ? [f.long, f.short] : [f.long])).join(' ');

export function bashScript(words: Word[]): string {
  const cases = words
    .map((w) => {
      if (!w.actions) return `    ${w.name}) flags="${flagList(w)}" ;;`;
      const inner = w.actions.map((a) => `        ${a.name}) flags="${flagList(a)}" ;;`).join('\n');
      return `    ${w.name})\n      actions="${w.actions.map((a) => a.name).join(' ')}"\n      flags="${flagList(w)}"\n      case "$action" in\n${inner}\n      esac ;;`;
    })
    .join('\n');
  return `# wharf completion for bash: add  source <(wharf completion bash)  to ~/.bashrc
_wharf() {
  local cur="\${COMP_WORDS[COMP_CWORD]}"
  local cmd="\${COMP_WORDS[1]}" action="\${COMP_WORDS[2]}"
  local actions="" flags=""
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=( $(compgen -W "${words.map((w) => w.name).join(' ')} --help --version" -- "$cur") )
    return
  fi
  case "$cmd" in
${cases}
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=( $(compgen -W "$flags --help" -- "$cur") )
  elif [ "$COMP_CWORD" -eq 2 ] && [ -n "$actions" ]; then
    COMPREPLY=( $(compgen -W "$actions" -- "$cur") )
  fi
}
complete -o default -F _wharf wharf
`;
}

/** zsh runs the bash function through its bashcompinit layer, so that both shells complete alike. */
export function zshScript(words: Word[]): string {
  return `# wharf completion for zsh: add  source <(wharf completion zsh)  to ~/.zshrc
autoload -U +X compinit && compinit
autoload -U +X bashcompinit && bashcompinit
${bashScript(words).split('\n').slice(1).join('\n')}`;
}

const fishQuote = (s: string): string => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

function fishFlags(cond: string, w: Word): string[] {
  return w.flags.map((f) => {
    const long = f.long.startsWith('--') ? ` -l ${f.long.slice(2)}` : '';
    const short = f.short ? ` -s ${f.short.slice(1)}` : '';
    return `complete -c wharf -n ${fishQuote(cond)}${long}${short}${f.takesValue ? ' -r' : ''} -d ${fishQuote(f.description)}`;
  });
}

export function fishScript(words: Word[]): string {
  const lines = ['# wharf completion for fish: wharf completion fish > ~/.config/fish/completions/wharf.fish', 'complete -c wharf -f'];
  for (const w of words) {
    lines.push(`complete -c wharf -n '__fish_use_subcommand' -a ${w.name} -d ${fishQuote(w.description)}`);
    const inCmd = `__fish_seen_subcommand_from ${w.name}`;
    if (!w.actions) {
      lines.push(...fishFlags(inCmd, w), `complete -c wharf -n ${fishQuote(inCmd)} -F`);
      continue;
    }
    const names = w.actions.map((a) => a.name).join(' ');
    for (const a of w.actions) {
      lines.push(`complete -c wharf -n ${fishQuote(`${inCmd}; and not __fish_seen_subcommand_from ${names}`)} -a ${a.name} -d ${fishQuote(a.description)}`);
      const inAction = `${inCmd}; and __fish_seen_subcommand_from ${a.name}`;
      lines.push(...fishFlags(inAction, a), `complete -c wharf -n ${fishQuote(inAction)} -F`);
    }
  }
  return `${lines.join('\n')}\n`;
}

export function runCompletion(shell: string): void {
  const words = completionModel();
  const scripts: Record<string, (w: Word[]) => string> = { bash: bashScript, zsh: zshScript, fish: fishScript };
  const make = scripts[shell];
  if (!make) throw new ExitError(`no completion for "${shell}"; use bash, zsh or fish`, 2);
  process.stdout.write(make(words));
}
