// Graceful stop on SIGTERM and SIGUSR1 (SLURM sends one before the time limit; mpirun forwards
// SIGUSR1 to the ranks): the handler only sets a flag, which long loops poll between steps.
#pragma once

namespace mfrec {

inline constexpr int kExitInterrupted = 75;  // EX_TEMPFAIL: checkpointed, run again with --resume

void install_stop_signals();
bool stop_requested();  // this process received SIGTERM or SIGUSR1

}  // namespace mfrec
