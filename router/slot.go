package router

// NumSlots is the number of hash slots, as in Redis Cluster.
const NumSlots = 16384

var crc16tab [256]uint16

func init() {
	// CRC16/XMODEM: polynomial 0x1021, initial value 0, no reflection.
	for i := range crc16tab {
		crc := uint16(i) << 8
		for j := 0; j < 8; j++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
		crc16tab[i] = crc
	}
}

func crc16(b []byte) uint16 {
	var crc uint16
	for _, c := range b {
		crc = crc<<8 ^ crc16tab[byte(crc>>8)^c]
	}
	return crc
}

// Slot returns the hash slot of key. If the key contains a "{...}" with at
// least one byte between the first '{' and the first '}' after it, only
// those bytes are hashed (the hash tag rule of Redis Cluster).
func Slot(key []byte) uint16 {
	for i, c := range key {
		if c == '{' {
			for j := i + 1; j < len(key); j++ {
				if key[j] == '}' {
					if j > i+1 {
						key = key[i+1 : j]
					}
					return crc16(key) & (NumSlots - 1)
				}
			}
			break
		}
	}
	return crc16(key) & (NumSlots - 1)
}
