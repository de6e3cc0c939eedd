// Transitional: one training run is declared in training_run.hpp ("experiment" now means only
// the grid's log, --experiment). Include that header instead; this one goes once no file uses it.
#pragma once
#include "mfrec/training_run.hpp"
