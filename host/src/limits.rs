use std::time::Duration;

/// Resource limits applied to every guest. Each field falls back to its `DEFAULT_*` constant;
/// build with `Limits::default().with_*(…)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Wall-clock time one plugin call may take (epoch interruption).
    pub call_timeout: Option<Duration>,
    /// Largest linear memory a guest may have, in bytes.
    pub memory: Option<usize>,
    /// Largest module accepted, in bytes of wasm.
    pub code_size: Option<usize>,
    /// Largest wasm stack, in bytes (deep recursion traps instead of crashing the node).
    pub stack: Option<usize>,
    /// Largest table a guest may have, in elements.
    pub table_elements: Option<usize>,
    /// Warm instances kept per plugin for reuse.
    pub pool_size: Option<usize>,
}

impl Limits {
    /// 50 ms per plugin call.
    pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_millis(50);
    /// 16 MiB of linear memory.
    pub const DEFAULT_MEMORY: usize = 16 << 20;
    /// 1 MiB of wasm.
    pub const DEFAULT_CODE_SIZE: usize = 1 << 20;
    /// 512 KiB of wasm stack.
    pub const DEFAULT_STACK: usize = 512 << 10;
    /// 10,000 table elements.
    pub const DEFAULT_TABLE_ELEMENTS: usize = 10_000;
    /// 8 warm instances per plugin.
    pub const DEFAULT_POOL_SIZE: usize = 8;

    /// The call timeout in force.
    pub fn call_timeout(&self) -> Duration {
        self.call_timeout.unwrap_or(Self::DEFAULT_CALL_TIMEOUT)
    }
    /// The memory cap in force.
    pub fn memory(&self) -> usize {
        self.memory.unwrap_or(Self::DEFAULT_MEMORY)
    }
    /// The code-size cap in force.
    pub fn code_size(&self) -> usize {
        self.code_size.unwrap_or(Self::DEFAULT_CODE_SIZE)
    }
    /// The stack cap in force.
    pub fn stack(&self) -> usize {
        self.stack.unwrap_or(Self::DEFAULT_STACK)
    }
    /// The table cap in force.
    pub fn table_elements(&self) -> usize {
        self.table_elements.unwrap_or(Self::DEFAULT_TABLE_ELEMENTS)
    }
    /// The instance pool size in force.
    pub fn pool_size(&self) -> usize {
        self.pool_size.unwrap_or(Self::DEFAULT_POOL_SIZE)
    }

    /// Sets the call timeout.
    pub fn with_call_timeout(mut self, t: Duration) -> Self {
        self.call_timeout = Some(t);
        self
    }
    /// Sets the memory cap.
    pub fn with_memory(mut self, bytes: usize) -> Self {
        self.memory = Some(bytes);
        self
    }
    /// Sets the code-size cap.
    pub fn with_code_size(mut self, bytes: usize) -> Self {
        self.code_size = Some(bytes);
        self
    }
    /// Sets the stack cap.
    pub fn with_stack(mut self, bytes: usize) -> Self {
        self.stack = Some(bytes);
        self
    }
    /// Sets the instance pool size.
    pub fn with_pool_size(mut self, n: usize) -> Self {
        self.pool_size = Some(n);
        self
    }
}
