import type { CAC } from 'cac';

export function registerCompletion(cli: CAC): void {
  cli
    .command('completion <shell>', 'Print a shell completion script: bash, zsh or fish')
    .example('source <(wharf completion bash)              # in ~/.bashrc')
    .example('source <(wharf completion zsh)               # in ~/.zshrc')
    .example('wharf completion fish > ~/.config/fish/completions/wharf.fish')
    .action(async (shell: string) => {
      const { runCompletion } = await import('../completion.js');
      runCompletion(String(shell));
    });
}
