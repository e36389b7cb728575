// A managed-runtime workload for `Scripts/capture-trace jvm`: a key-value service's heap on the JVM, whose
// collector moves live objects (G1 evacuates young regions into survivor and old ones, and compacts old
// regions in mixed collections), so the same bytes come back at other addresses from one snapshot to the next.
//
// The heap holds a map of Entry objects (a key, a version, a timestamp and a value of 64-256 bytes) and, per
// shard, an ordered list of recent keys. Each step: replaces an entry's value (a new array: the old one dies),
// updates an entry in place, or inserts into a list (elements shift). Runs until killed; prints its pid once
// the heap is loaded.
//
//   java -Xms256m -Xmx256m -XX:+AlwaysPreTouch Scripts/programs/HeapChurn.java [entries]
import java.util.ArrayList;
import java.util.HashMap;
import java.util.SplittableRandom;

public final class HeapChurn {
    static final class Entry {
        final long key;
        long version;
        long touched;
        byte[] value;

        Entry(long key, byte[] value) {
            this.key = key;
            this.value = value;
        }
    }

    public static void main(String[] arguments) {
        int entries = arguments.length > 0 ? Integer.parseInt(arguments[0]) : 400_000;
        SplittableRandom random = new SplittableRandom(42);
        HashMap<Long, Entry> map = new HashMap<>(entries * 2);
        ArrayList<ArrayList<Long>> recent = new ArrayList<>();
        for (int shard = 0; shard < 64; shard++) recent.add(new ArrayList<>());
        for (long key = 0; key < entries; key++) map.put(key, new Entry(key, value(random)));
        System.out.println("heap-churn: pid " + ProcessHandle.current().pid() + ", " + entries + " entries");
        System.out.flush();
        long steps = 0;
        while (true) {
            long key = random.nextLong(entries);
            Entry entry = map.get(key);
            int choice = random.nextInt(10);
            if (choice < 5) {
                entry.value = value(random);
            } else if (choice < 8) {
                entry.version++;
                entry.touched = steps;
                entry.value[random.nextInt(entry.value.length)] ^= 1;
            } else {
                ArrayList<Long> list = recent.get((int) (key & 63));
                list.add(random.nextInt(list.size() + 1), key);
                if (list.size() > 2_000) list.remove(random.nextInt(list.size()));
            }
            steps++;
        }
    }

    /// A value of 64-256 bytes: text-like (a record of fields), as services mostly hold.
    static byte[] value(SplittableRandom random) {
        byte[] bytes = new byte[64 + random.nextInt(193)];
        for (int index = 0; index < bytes.length; index++) bytes[index] = (byte) ('a' + random.nextInt(26));
        return bytes;
    }
}
