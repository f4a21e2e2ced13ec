package resp

// AuthArgs is the AUTH command for a password and an optional ACL user, or
// nil without a password: what every connection to a shard sends first.
func AuthArgs(username, password string) []string {
	switch {
	case password == "":
		return nil
	case username == "":
		return []string{"AUTH", password}
	default:
		return []string{"AUTH", username, password}
	}
}
