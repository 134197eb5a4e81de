import java.nio.file.Path;
import java.time.Duration;

import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.HttpConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.graphdb.GraphDatabaseService;

/**
 * Runs a real Neo4j Community database (5.26 LTS or 2026.08) inside this JVM with only the Bolt
 * connector, for development and tests on machines without Docker or a Neo4j package. One source
 * for both versions: it uses only API that both have.
 *
 * Usage: java ... Neo4jServer.java HOME_DIR [BOLT_PORT] (5.26, single-file source launch), or
 * java ... -cp CLASSES:... Neo4jServer HOME_DIR [BOLT_PORT] (compiled once for 2026.08). The
 * password, when wanted, comes from the NEO4J_PASSWORD environment variable; without one,
 * authentication is off (loopback only). NEO4J_CONFIG_FILE, when set, names a neo4j.conf-style
 * file of further settings, for those this launcher does not set itself (e.g.
 * db.query.default_language=CYPHER_25 on 2026.08).
 */
public final class Neo4jServer {
    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println("usage: Neo4jServer HOME_DIR [BOLT_PORT]");
            System.exit(2);
        }
        Path home = Path.of(args[0]).toAbsolutePath();
        int port = args.length > 1 ? Integer.parseInt(args[1]) : 7687;
        String password = System.getenv().getOrDefault("NEO4J_PASSWORD", "");
        boolean auth = !password.isEmpty();

        DatabaseManagementServiceBuilder builder = new DatabaseManagementServiceBuilder(home);
        String configFile = System.getenv().getOrDefault("NEO4J_CONFIG_FILE", "");
        if (!configFile.isEmpty()) {
            builder.loadPropertiesFromFile(Path.of(configFile));
        }
        DatabaseManagementService dbms = builder
                .setConfig(BoltConnector.enabled, true)
                .setConfig(BoltConnector.listen_address, new SocketAddress("127.0.0.1", port))
                .setConfig(BoltConnector.encryption_level, BoltConnector.EncryptionLevel.DISABLED)
                .setConfig(HttpConnector.enabled, false)
                .setConfig(GraphDatabaseSettings.auth_enabled, auth)
                .setConfig(GraphDatabaseSettings.transaction_timeout, Duration.ofMinutes(5))
                .build();
        // services.sh reads these lines from the log; the pid ties each to this JVM. STOPPING tells a
        // start that finds this JVM still alive that it is on its way out, not still starting.
        long pid = ProcessHandle.current().pid();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            System.out.println("NEO4J STOPPING pid " + pid);
            System.out.flush();
            dbms.shutdown();
            System.out.println("NEO4J STOPPED pid " + pid);
            System.out.flush();
        }, "neo4j-shutdown"));

        GraphDatabaseService db = dbms.database(GraphDatabaseSettings.DEFAULT_DATABASE_NAME);
        if (auth) {
            GraphDatabaseService system = dbms.database(GraphDatabaseSettings.SYSTEM_DATABASE_NAME);
            system.executeTransactionally(
                    "ALTER USER neo4j SET PASSWORD $pw CHANGE NOT REQUIRED",
                    java.util.Map.of("pw", password));
        }
        db.executeTransactionally("RETURN 1");
        System.out.println("NEO4J READY bolt://127.0.0.1:" + port + " pid " + pid);
        System.out.flush();
        Thread.currentThread().join();
    }
}
