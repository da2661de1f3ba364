// Swagger UI over the service's own OpenAPI document; every asset comes from this server.
window.SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [window.SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  showExtensions: true,
  showCommonExtensions: true,
  // the admin token typed into "Authorize" stays in this tab's memory, never in storage
  persistAuthorization: false,
});
