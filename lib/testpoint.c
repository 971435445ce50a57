// SPDX-License-Identifier: MIT
/* The test-point hook (see testpoint.h): set by tests, NULL otherwise. */
#include "testpoint.h"

void (*sluice__tp_hook)(enum sluice__tp point, void *obj);
