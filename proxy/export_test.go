package proxy

// SetTestHook makes a proxy built from cfg call fn where a panic must end
// one client and no more (Config.testHook).
func SetTestHook(cfg *Config, fn func(where string, args [][]byte)) { cfg.testHook = fn }
