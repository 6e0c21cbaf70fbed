/* The CLI's subcommands: each lives in its own cmd_*.c file and is listed
 * in the table in main.c. argv[0] is the subcommand's name. Return the
 * process exit status. */
#ifndef BONSAI_CLI_COMMANDS_H
#define BONSAI_CLI_COMMANDS_H

int cmd_bench(int argc, char **argv);
int cmd_synth(int argc, char **argv); /* cmd_synth.c */
int cmd_info(int argc, char **argv);  /* cmd_info.c */
int cmd_run(int argc, char **argv);

void info_cuda_print(void); /* info_cuda.c: the CUDA lines of bonsai info */
void cli_print_build(void); /* main.c: version, compiler, CPU tiers */

#endif
