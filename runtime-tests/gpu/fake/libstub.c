/* Any other driver library: only its soname and file name matter. */
int vessel_fake_driver_library(void) { return 0; }
