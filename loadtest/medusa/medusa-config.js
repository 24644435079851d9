// Medusa v2 as the flash-sale load test's peer: a plain JavaScript config (no build step),
// copied into the install directory by loadtest/medusa/install. PostgreSQL database
// `flashgate_medusa`, Redis DB index 5 for every Redis module (never the project's db 0),
// the system payment provider only, no admin dashboard.
const { defineConfig, Modules } = require("@medusajs/framework/utils")

const DATABASE_URL = process.env.DATABASE_URL || "postgres://postgres@127.0.0.1:5432/flashgate_medusa"
const REDIS_URL = process.env.REDIS_URL || "redis://127.0.0.1:6379/5"
const CORS = "http://127.0.0.1:18130"

module.exports = defineConfig({
  projectConfig: {
    databaseUrl: DATABASE_URL,
    databaseDriverOptions: { ssl: false, sslmode: "disable" },
    redisUrl: REDIS_URL,
    workerMode: "shared",
    http: {
      storeCors: CORS,
      adminCors: CORS,
      authCors: CORS,
      jwtSecret: process.env.JWT_SECRET || "flashgate-loadtest-jwt",
      cookieSecret: process.env.COOKIE_SECRET || "flashgate-loadtest-cookie",
    },
  },
  admin: { disable: true },
  modules: [
    {
      resolve: "@medusajs/medusa/cache-redis",
      options: { redisUrl: REDIS_URL },
    },
    {
      resolve: "@medusajs/medusa/event-bus-redis",
      options: { redisUrl: REDIS_URL },
    },
    {
      resolve: "@medusajs/medusa/workflow-engine-redis",
      options: { redis: { redisUrl: REDIS_URL } },
    },
    {
      resolve: "@medusajs/medusa/locking",
      options: {
        providers: [
          {
            resolve: "@medusajs/medusa/locking-redis",
            id: "locking-redis",
            is_default: true,
            options: { redisUrl: REDIS_URL },
          },
        ],
      },
    },
  ],
})
