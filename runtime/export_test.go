package runtime

import "github.com/meshlet/meshlet/ports/kafka"

// WrapSession puts f's session between the batch loop and Kafka, so a test
// can make a call fail after Kafka did its part (an End whose commit went
// through but whose answer was lost). Call it between Start and Run.
func WrapSession(r *Runner, f func(kafka.Session) kafka.Session) { r.sess = f(r.sess) }
