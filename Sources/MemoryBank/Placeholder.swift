// MemoryBank module: placeholder until the first file lands.
