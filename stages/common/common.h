// Everything a stage needs from stages/common, in one include.
//
// stages/common is plumbing: flags, the listening socket, an owning fd, logging,
// signals and the exit summary. It holds no event-loop logic: whatever differs
// between stages stays in the stage's server.cc.
#pragma once

#include "stages/common/fd.h"
#include "stages/common/listener.h"
#include "stages/common/log.h"
#include "stages/common/options.h"
#include "stages/common/process.h"
