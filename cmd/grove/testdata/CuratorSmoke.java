import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.api.transaction.CuratorTransactionResult;
import org.apache.curator.framework.recipes.cache.CuratorCache;
import org.apache.curator.framework.recipes.cache.CuratorCacheListener;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.retry.RetryNTimes;
import org.apache.zookeeper.AddWatchMode;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.WatchedEvent;
import org.apache.zookeeper.Watcher;

/**
 * A smoke test of Apache Curator (Debian's libcurator-*-java) against a
 * Grove cluster's ZooKeeper ports, run by cmd/grove's TestCuratorAgainstCluster.
 * Each step prints "ok <step>"; any failure throws, and the JVM exits
 * non-zero.
 */
public class CuratorSmoke {
    static String servers;

    static CuratorFramework client() {
        CuratorFramework c = CuratorFrameworkFactory.newClient(servers, 30000, 10000, new RetryNTimes(20, 200));
        c.start();
        return c;
    }

    static void check(boolean cond, String what) {
        if (!cond) {
            throw new AssertionError(what);
        }
    }

    public static void main(String[] args) throws Exception {
        servers = args[0];
        mutex();
        leaderLatch();
        cache();
        persistentWatch();
        transaction();
        System.out.println("all ok");
        System.exit(0);
    }

    /** InterProcessMutex across three clients: never two holders at once. */
    static void mutex() throws Exception {
        AtomicInteger holders = new AtomicInteger(), maxHolders = new AtomicInteger(), acquired = new AtomicInteger();
        List<Thread> threads = new ArrayList<>();
        List<Throwable> errors = new CopyOnWriteArrayList<>();
        for (int i = 0; i < 3; i++) {
            Thread t = new Thread(() -> {
                try (CuratorFramework c = client()) {
                    InterProcessMutex m = new InterProcessMutex(c, "/curator/mutex");
                    for (int j = 0; j < 10; j++) {
                        check(m.acquire(60, TimeUnit.SECONDS), "mutex acquire timed out");
                        try {
                            int h = holders.incrementAndGet();
                            maxHolders.accumulateAndGet(h, Math::max);
                            Thread.sleep(2);
                            acquired.incrementAndGet();
                            holders.decrementAndGet();
                        } finally {
                            m.release();
                        }
                    }
                } catch (Throwable e) {
                    errors.add(e);
                }
            });
            threads.add(t);
            t.start();
        }
        for (Thread t : threads) {
            t.join();
        }
        if (!errors.isEmpty()) {
            throw new AssertionError("mutex: " + errors.get(0), errors.get(0));
        }
        check(maxHolders.get() == 1, "mutex: " + maxHolders.get() + " holders at once");
        check(acquired.get() == 30, "mutex: acquired " + acquired.get() + " times, want 30");
        System.out.println("ok mutex");
    }

    /** LeaderLatch: one of two leads; when it closes, the other takes over. */
    static void leaderLatch() throws Exception {
        try (CuratorFramework c1 = client(); CuratorFramework c2 = client()) {
            LeaderLatch a = new LeaderLatch(c1, "/curator/latch", "a");
            LeaderLatch b = new LeaderLatch(c2, "/curator/latch", "b");
            a.start();
            b.start();
            long deadline = System.currentTimeMillis() + 30000;
            while (!a.hasLeadership() && !b.hasLeadership()) {
                check(System.currentTimeMillis() < deadline, "latch: no leader");
                Thread.sleep(20);
            }
            check(!(a.hasLeadership() && b.hasLeadership()), "latch: two leaders");
            LeaderLatch leader = a.hasLeadership() ? a : b, other = leader == a ? b : a;
            leader.close();
            check(other.await(30, TimeUnit.SECONDS), "latch: no failover");
            other.close();
        }
        System.out.println("ok leader latch");
    }

    /** CuratorCache sees a create, an update and a delete. */
    static void cache() throws Exception {
        try (CuratorFramework c = client()) {
            c.create().creatingParentsIfNeeded().forPath("/curator/cache");
            CountDownLatch created = new CountDownLatch(1), changed = new CountDownLatch(1), deleted = new CountDownLatch(1);
            CuratorCache cache = CuratorCache.build(c, "/curator/cache");
            cache.listenable().addListener(CuratorCacheListener.builder()
                .forCreates(n -> { if (n.getPath().equals("/curator/cache/a")) created.countDown(); })
                .forChanges((o, n) -> { if (n.getPath().equals("/curator/cache/a")) changed.countDown(); })
                .forDeletes(n -> { if (n.getPath().equals("/curator/cache/a")) deleted.countDown(); })
                .build());
            CountDownLatch initialized = new CountDownLatch(1);
            cache.listenable().addListener(CuratorCacheListener.builder().forInitialized(initialized::countDown).build());
            cache.start();
            check(initialized.await(30, TimeUnit.SECONDS), "cache: never initialised");
            c.create().forPath("/curator/cache/a", "1".getBytes());
            check(created.await(30, TimeUnit.SECONDS), "cache: missed the create");
            c.setData().forPath("/curator/cache/a", "2".getBytes());
            check(changed.await(30, TimeUnit.SECONDS), "cache: missed the update");
            c.delete().forPath("/curator/cache/a");
            check(deleted.await(30, TimeUnit.SECONDS), "cache: missed the delete");
            cache.close();
        }
        System.out.println("ok cache");
    }

    /** A persistent recursive watch sees creates below it. */
    static void persistentWatch() throws Exception {
        try (CuratorFramework c = client()) {
            c.create().creatingParentsIfNeeded().forPath("/curator/pw");
            CountDownLatch seen = new CountDownLatch(2);
            Watcher w = (WatchedEvent e) -> {
                if (e.getType() == Watcher.Event.EventType.NodeCreated && e.getPath().startsWith("/curator/pw/")) {
                    seen.countDown();
                }
            };
            c.watchers().add().withMode(AddWatchMode.PERSISTENT_RECURSIVE).usingWatcher(w).forPath("/curator/pw");
            c.create().forPath("/curator/pw/a");
            c.create().forPath("/curator/pw/a/b");
            check(seen.await(30, TimeUnit.SECONDS), "persistent watch: missed creates");
        }
        System.out.println("ok persistent watch");
    }

    /** A transaction creating a container and a TTL node (their results are create2). */
    static void transaction() throws Exception {
        try (CuratorFramework c = client()) {
            List<CuratorTransactionResult> results = c.transaction().forOperations(
                c.transactionOp().create().withMode(CreateMode.CONTAINER).forPath("/curator/txc"),
                c.transactionOp().create().withTtl(3600000).withMode(CreateMode.PERSISTENT_WITH_TTL).forPath("/curator/txt"),
                c.transactionOp().create().forPath("/curator/txp", "x".getBytes()));
            check(results.size() == 3, "transaction: " + results.size() + " results");
            check(c.checkExists().forPath("/curator/txc") != null, "transaction: no container");
            check(c.checkExists().forPath("/curator/txt") != null, "transaction: no TTL node");
        }
        System.out.println("ok transaction");
    }
}
