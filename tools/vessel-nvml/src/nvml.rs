//! The few NVML calls vessel-nvml makes, resolved once from the loaded
//! library (names and types as in NVIDIA's nvml.h). Functions a driver may
//! lack (MIG arrived with R450, `_v3` PCI info later) are optional.

use libloading::Library;
use std::ffi::{c_char, c_int, c_uint, c_void, CStr};

/// `nvmlDevice_t`: an opaque handle owned by NVML.
pub type Device = *mut c_void;
/// `nvmlReturn_t`.
type Ret = c_int;

const SUCCESS: Ret = 0;
const ERROR_NOT_SUPPORTED: Ret = 3;
const ERROR_NOT_FOUND: Ret = 6;
const ERROR_FUNCTION_NOT_FOUND: Ret = 13;
const MIG_ENABLE: c_uint = 1;
/// NVML_DEVICE_UUID_V2_BUFFER_SIZE.
const UUID_LEN: usize = 96;

/// `nvmlPciInfo_t` (the `_v2` and `_v3` calls fill the same layout); only
/// `bus_id` is read, the rest is there for the layout.
#[allow(dead_code)]
#[repr(C)]
struct PciInfo {
    bus_id_legacy: [c_char; 16],
    domain: c_uint,
    bus: c_uint,
    device: c_uint,
    pci_device_id: c_uint,
    pci_sub_system_id: c_uint,
    bus_id: [c_char; 32],
}

type NoArgs = unsafe extern "C" fn() -> Ret;
type GetUint = unsafe extern "C" fn(Device, *mut c_uint) -> Ret;
type ByIndex = unsafe extern "C" fn(c_uint, *mut Device) -> Ret;
type GetString = unsafe extern "C" fn(Device, *mut c_char, c_uint) -> Ret;
type GetPci = unsafe extern "C" fn(Device, *mut PciInfo) -> Ret;
type GetMode = unsafe extern "C" fn(Device, *mut c_uint, *mut c_uint) -> Ret;
type MigByIndex = unsafe extern "C" fn(Device, c_uint, *mut Device) -> Ret;
type ErrorString = unsafe extern "C" fn(Ret) -> *const c_char;
type CountOut = unsafe extern "C" fn(*mut c_uint) -> Ret;

/// The library, kept loaded as long as the function pointers taken from it.
pub struct Nvml {
    init: NoArgs,
    shutdown: NoArgs,
    device_count: CountOut,
    handle_by_index: ByIndex,
    uuid: GetString,
    pci_info: Option<GetPci>,
    mig_mode: Option<GetMode>,
    max_mig_count: Option<GetUint>,
    mig_by_index: Option<MigByIndex>,
    gi_id: Option<GetUint>,
    ci_id: Option<GetUint>,
    error_string: ErrorString,
    _lib: Library,
}

/// The function `name` of `lib`, as a plain pointer of type T.
///
/// # Safety
/// T must be the function's real type (from nvml.h).
unsafe fn symbol<T: Copy>(lib: &Library, name: &str) -> Option<T> {
    let cname = format!("{name}\0");
    lib.get::<T>(cname.as_bytes()).ok().map(|s| *s)
}

impl Nvml {
    /// Loads `path`; every required function must be there.
    pub fn load(path: &str) -> Result<Nvml, String> {
        // SAFETY: loading runs the library's initialisers; the path is the
        // host driver's own NVML, which the caller chose to trust.
        let lib = unsafe { Library::new(path) }.map_err(|e| format!("loading {path}: {e}"))?;
        let need = |name: &str| format!("{path} has no {name} (not NVIDIA's NVML?)");
        // SAFETY: each type is the function's prototype in nvml.h.
        unsafe {
            Ok(Nvml {
                init: symbol(&lib, "nvmlInit_v2").ok_or_else(|| need("nvmlInit_v2"))?,
                shutdown: symbol(&lib, "nvmlShutdown").ok_or_else(|| need("nvmlShutdown"))?,
                device_count: symbol(&lib, "nvmlDeviceGetCount_v2")
                    .ok_or_else(|| need("nvmlDeviceGetCount_v2"))?,
                handle_by_index: symbol(&lib, "nvmlDeviceGetHandleByIndex_v2")
                    .ok_or_else(|| need("nvmlDeviceGetHandleByIndex_v2"))?,
                uuid: symbol(&lib, "nvmlDeviceGetUUID").ok_or_else(|| need("nvmlDeviceGetUUID"))?,
                pci_info: symbol(&lib, "nvmlDeviceGetPciInfo_v3")
                    .or_else(|| symbol(&lib, "nvmlDeviceGetPciInfo_v2")),
                mig_mode: symbol(&lib, "nvmlDeviceGetMigMode"),
                max_mig_count: symbol(&lib, "nvmlDeviceGetMaxMigDeviceCount"),
                mig_by_index: symbol(&lib, "nvmlDeviceGetMigDeviceHandleByIndex"),
                gi_id: symbol(&lib, "nvmlDeviceGetGpuInstanceId"),
                ci_id: symbol(&lib, "nvmlDeviceGetComputeInstanceId"),
                error_string: symbol(&lib, "nvmlErrorString")
                    .ok_or_else(|| need("nvmlErrorString"))?,
                _lib: lib,
            })
        }
    }

    /// `what: NVML's message` unless `ret` is success.
    fn check(&self, what: &str, ret: Ret) -> Result<(), String> {
        if ret == SUCCESS {
            return Ok(());
        }
        // SAFETY: nvmlErrorString returns a static string for any code.
        let msg = unsafe { (self.error_string)(ret) };
        let msg = if msg.is_null() {
            format!("error {ret}")
        } else {
            // SAFETY: non-null, NUL-terminated, static.
            unsafe { CStr::from_ptr(msg) }
                .to_string_lossy()
                .into_owned()
        };
        Err(format!("{what}: {msg}"))
    }

    pub fn init(&self) -> Result<(), String> {
        // SAFETY: no arguments.
        self.check("nvmlInit_v2", unsafe { (self.init)() })
    }

    pub fn shutdown(&self) {
        // SAFETY: no arguments; called once after a successful init.
        unsafe { (self.shutdown)() };
    }

    pub fn device_count(&self) -> Result<c_uint, String> {
        let mut n = 0;
        // SAFETY: n is a valid out pointer.
        self.check("nvmlDeviceGetCount_v2", unsafe {
            (self.device_count)(&mut n)
        })?;
        Ok(n)
    }

    pub fn device(&self, index: c_uint) -> Result<Device, String> {
        let mut dev: Device = std::ptr::null_mut();
        // SAFETY: dev is a valid out pointer.
        let ret = unsafe { (self.handle_by_index)(index, &mut dev) };
        self.check(&format!("nvmlDeviceGetHandleByIndex_v2({index})"), ret)?;
        Ok(dev)
    }

    /// `GPU-...` for a GPU, `MIG-...` for a MIG device.
    pub fn uuid(&self, dev: Device) -> Result<String, String> {
        let mut buf = [0 as c_char; UUID_LEN];
        // SAFETY: buf holds UUID_LEN bytes, the length passed.
        let ret = unsafe { (self.uuid)(dev, buf.as_mut_ptr(), UUID_LEN as c_uint) };
        self.check("nvmlDeviceGetUUID", ret)?;
        Ok(c_string(&buf))
    }

    /// The PCI bus id (`00000000:3B:00.0`); empty when NVML has no call for it.
    pub fn bus_id(&self, dev: Device) -> Result<String, String> {
        let Some(get) = self.pci_info else {
            return Ok(String::new());
        };
        // SAFETY: a plain C struct of integers and char arrays; all-zero is valid.
        let mut info: PciInfo = unsafe { std::mem::zeroed() };
        // SAFETY: info is a valid, writable nvmlPciInfo_t.
        self.check("nvmlDeviceGetPciInfo", unsafe { get(dev, &mut info) })?;
        Ok(c_string(&info.bus_id))
    }

    /// Whether MIG mode is on now; false where the GPU or driver has no MIG.
    pub fn mig_enabled(&self, dev: Device) -> Result<bool, String> {
        let Some(get) = self.mig_mode else {
            return Ok(false);
        };
        let (mut current, mut pending) = (0, 0);
        // SAFETY: both are valid out pointers.
        match unsafe { get(dev, &mut current, &mut pending) } {
            ERROR_NOT_SUPPORTED | ERROR_FUNCTION_NOT_FOUND => Ok(false),
            ret => self
                .check("nvmlDeviceGetMigMode", ret)
                .map(|_| current == MIG_ENABLE),
        }
    }

    pub fn max_mig_count(&self, dev: Device) -> Result<c_uint, String> {
        self.get_uint(self.max_mig_count, "nvmlDeviceGetMaxMigDeviceCount", dev)
    }

    /// The MIG device in `slot`, None for an empty slot.
    pub fn mig_device(&self, gpu: Device, slot: c_uint) -> Result<Option<Device>, String> {
        let get = self
            .mig_by_index
            .ok_or("this NVML has no nvmlDeviceGetMigDeviceHandleByIndex")?;
        let mut mig: Device = std::ptr::null_mut();
        // SAFETY: mig is a valid out pointer.
        match unsafe { get(gpu, slot, &mut mig) } {
            ERROR_NOT_FOUND => Ok(None),
            ret => self
                .check(&format!("nvmlDeviceGetMigDeviceHandleByIndex({slot})"), ret)
                .map(|_| Some(mig)),
        }
    }

    pub fn gpu_instance_id(&self, mig: Device) -> Result<c_uint, String> {
        self.get_uint(self.gi_id, "nvmlDeviceGetGpuInstanceId", mig)
    }

    pub fn compute_instance_id(&self, mig: Device) -> Result<c_uint, String> {
        self.get_uint(self.ci_id, "nvmlDeviceGetComputeInstanceId", mig)
    }

    fn get_uint(&self, f: Option<GetUint>, name: &str, dev: Device) -> Result<c_uint, String> {
        let f = f.ok_or_else(|| format!("this NVML has no {name}"))?;
        let mut n = 0;
        // SAFETY: n is a valid out pointer.
        self.check(name, unsafe { f(dev, &mut n) })?;
        Ok(n)
    }
}

/// The text of a NUL-terminated C buffer (all of it when NVML filled it).
fn c_string(buf: &[c_char]) -> String {
    let bytes: Vec<u8> = buf
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}
