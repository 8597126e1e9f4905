// Compiles the ABI header on its own so its static_asserts run in every build.
#include "abi.h"
