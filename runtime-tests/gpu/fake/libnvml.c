/* The fake driver's NVML (libnvidia-ml.so.1): the same two GPUs as its
 * /proc files (index 0 on bus 3b, index 1 on bus af) and the one MIG
 * device, gi 1 / ci 0 on GPU 0, with the UUID only NVML knows. Just the
 * calls vessel-nvml makes, with nvml.h's types.
 * VESSEL_FAKE_NVML=no-driver makes nvmlInit_v2 fail as it does when the
 * kernel module is not loaded. */
#include <stdlib.h>
#include <string.h>

typedef int nvmlReturn_t;
#define NVML_SUCCESS 0
#define NVML_ERROR_UNINITIALIZED 1
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_NOT_FOUND 6
#define NVML_ERROR_DRIVER_NOT_LOADED 9

typedef struct fake_device {
	const char *uuid;
	const char *bus_id;
	int gpu; /* the parent GPU's index; -1 for a GPU itself */
	unsigned int gi, ci;
} *nvmlDevice_t;

typedef struct {
	char busIdLegacy[16];
	unsigned int domain, bus, device, pciDeviceId, pciSubSystemId;
	char busId[32];
} nvmlPciInfo_t;

static struct fake_device gpus[] = {
	{"GPU-11111111-2222-3333-4444-555555555555", "00000000:3B:00.0", -1, 0, 0},
	{"GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "00000000:AF:00.0", -1, 0, 0},
};
static struct fake_device mig = {"MIG-f0f0f0f0-1111-2222-3333-444444444444", "", 0, 1, 0};
static int initialised;

nvmlReturn_t nvmlInit_v2(void)
{
	const char *mode = getenv("VESSEL_FAKE_NVML");
	if (mode && strcmp(mode, "no-driver") == 0)
		return NVML_ERROR_DRIVER_NOT_LOADED;
	initialised = 1;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlShutdown(void)
{
	initialised = 0;
	return NVML_SUCCESS;
}

const char *nvmlErrorString(nvmlReturn_t r)
{
	switch (r) {
	case NVML_SUCCESS: return "Success";
	case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
	case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
	case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
	case NVML_ERROR_NOT_FOUND: return "Not Found";
	case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
	default: return "Unknown Error";
	}
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count)
{
	if (!initialised)
		return NVML_ERROR_UNINITIALIZED;
	*count = 2;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int i, nvmlDevice_t *d)
{
	if (!initialised)
		return NVML_ERROR_UNINITIALIZED;
	if (i >= 2)
		return NVML_ERROR_INVALID_ARGUMENT;
	*d = &gpus[i];
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char *uuid, unsigned int len)
{
	if (strlen(d->uuid) >= len)
		return NVML_ERROR_INVALID_ARGUMENT;
	strcpy(uuid, d->uuid);
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t d, nvmlPciInfo_t *pci)
{
	if (d->gpu >= 0)
		return NVML_ERROR_NOT_SUPPORTED;
	memset(pci, 0, sizeof(*pci));
	strcpy(pci->busId, d->bus_id);
	return NVML_SUCCESS;
}

/* MIG mode is on for GPU 0 only; GPU 1 has no MIG. */
nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t d, unsigned int *current, unsigned int *pending)
{
	if (d != &gpus[0])
		return NVML_ERROR_NOT_SUPPORTED;
	*current = *pending = 1;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t d, unsigned int *count)
{
	*count = d == &gpus[0] ? 7 : 0;
	return NVML_SUCCESS;
}

/* Slot 0 is empty and slot 1 holds the MIG device, as a real GPU's slots
 * need not be filled in order. */
nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t d, unsigned int i, nvmlDevice_t *m)
{
	if (d != &gpus[0] || i >= 7)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (i != 1)
		return NVML_ERROR_NOT_FOUND;
	*m = &mig;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetGpuInstanceId(nvmlDevice_t d, unsigned int *id)
{
	if (d->gpu < 0)
		return NVML_ERROR_INVALID_ARGUMENT;
	*id = d->gi;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetComputeInstanceId(nvmlDevice_t d, unsigned int *id)
{
	if (d->gpu < 0)
		return NVML_ERROR_INVALID_ARGUMENT;
	*id = d->ci;
	return NVML_SUCCESS;
}
