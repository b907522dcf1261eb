// Package queue is a reliable distributed FIFO queue on a Grove session,
// with optional priorities, a size bound and a dead-letter queue.
//
// Layout under the queue's directory:
//
//	items/i-<priority>-<seq>   one per queued item, data = payload;
//	                           its version counts the deliveries
//	leases/<item>.<delivery>   ephemeral: the consumer holding a delivery
//	dead/<item>                items delivered WithMaxDeliveries(n) times without an Ack
//
// Take claims the first item without a live lease with one atomic multi:
// the item's version moves from d to d+1 (compare-and-set, so one consumer
// wins) and the consumer's ephemeral lease <item>.<d+1> is created. Ack
// deletes the item and the lease in one multi that succeeds only while the
// item is still at that delivery — so an item is acknowledged at most
// once. If the consumer's session dies before Ack, its lease vanishes and
// the item is delivered again; after WithMaxDeliveries(n) deliveries it
// moves to dead/.
package queue
